"""Every API route the guides name is in the OpenAPI document the daemon serves, with that
method; the other paths they name are served; every metric they name is exported."""

from __future__ import annotations

import re

from starlette.applications import Starlette
from starlette.routing import Match

from bot.gateway.cloud.webhook import webhook_router
from bot.web.metrics import Metrics
from bot.web.server import build_app
from tests.docs.generate import openapi
from tests.docs.markdown import pages

ROUTE = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE) (/[A-Za-z0-9_/{}.%-]*)")
SERVED = re.compile(r"^/(healthz|metrics|openapi\.json|docs|webhooks/[a-z]+)$")
METRIC = re.compile(r"\bwabot_[a-z_]+[a-z]\b")


def shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/.,"))


def named_routes() -> list[tuple[str, str, str]]:
    return [(p.name, m.group(1), m.group(2)) for p in pages() for m in ROUTE.finditer(p.text)]


def test_every_route_named_is_in_the_openapi_document_with_that_method() -> None:
    spec = {(method.upper(), shape(path)) for path, ops in openapi()["paths"].items()
            for method in ops}
    named = named_routes()
    assert len(named) > 20
    wrong = [f"{where}: {method} {path}" for where, method, path in named
             if path.startswith("/api/") and (method, shape(path)) not in spec]
    assert not wrong, "routes the API does not have: " + ", ".join(wrong)


def serves(app: Starlette, method: str, path: str) -> bool:
    """Whether a request would reach a route (Starlette's own matching, so routers that
    FastAPI wraps are searched too)."""
    scope = {"type": "http", "method": method, "path": re.sub(r"\{[^}]*\}", "x", path),
             "root_path": "", "query_string": b"", "headers": []}
    return any(route.matches(scope)[0] == Match.FULL for route in app.routes)


def test_every_other_path_named_is_served() -> None:
    app = build_app(None, None, extra_routers=[webhook_router(lambda: [])])  # type: ignore[arg-type]
    named = {("GET", c) for p in pages() for c in p.inline_code() if SERVED.match(c)}
    named |= {(m, path) for _, m, path in named_routes() if not path.startswith("/api/")}
    assert ("GET", "/webhooks/whatsapp") in named
    wrong = {(m, path) for m, path in named
             if not serves(app, m, path) and not serves(app, "POST", path)}
    assert not wrong, f"paths not served: {wrong}"


def test_every_metric_named_is_exported() -> None:
    exported = Metrics(0.15, 0.6).render().decode()
    names = {m for p in pages() for m in METRIC.findall(p.text)}
    assert len(names) > 10
    assert not {n for n in names if n not in exported}, "metrics not exported"
