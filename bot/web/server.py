"""The console's HTTP server: FastAPI on uvicorn, inside the daemon's event loop.

`build_app(console, auth, extra_routers=[...])` assembles the ASGI app: the page, the
API under /api/v1 (described by /openapi.json), /healthz and /metrics (no token), and any
extra routers a transport brings — e.g. a webhook receiver mounted at `/webhooks/<name>`:

    server = WebServer(console, auth, settings.http, extra_routers=[cloud_router])

The App mounts its `extra_routers` argument and the routers its gateway offers
(`Gateway.routers`: the Cloud API's webhook receiver).
Extra routers are mounted as given (their own prefix and their own authentication: they
are not behind the console's token). A fixed path whose endpoint is a plain ASGI app (the
Cloud API webhook) is served by `WebServer` ahead of the console's middleware and routing
(`Ahead`): it brings its own checks, and the console's cost it more than its own work.
`WebServer.start()` binds the socket (a port in use fails the start with a message) and
serves in a task; `stop()` finishes requests in flight and closes. Uvicorn's own signal
handling is off: the daemon owns SIGTERM.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from loguru import logger
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.settings import HttpSettings
from bot.web import alerts, api, fleet, linking, numbers, pages
from bot.web.auth import Auth
from bot.web.console import BadRequest, Console, InvalidNumber, NotFound, SendFailed
from bot.web.directory import Consoles
from bot.web.forward import ServedElsewhere
from bot.web.headers import SecurityHeaders


class ConsoleError(RuntimeError):
    """The console cannot serve (port in use…); the message says what to change."""


class _TooLarge(Exception):
    pass


class BodyLimit:
    """413 for bodies over the limit, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0
        over = replaced = False

        async def counted() -> Message:
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                over = True
                raise _TooLarge  # the framework may turn it into its own error response…
            return message

        async def tracked(message: Message) -> None:
            nonlocal replaced
            if not over:
                await send(message)
            elif not replaced:  # … which is replaced by the 413
                replaced = True
                await self._reject(send)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not replaced:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        await JSONResponse({"error": f"request body larger than {self.max_bytes} bytes "
                            "(http.max_body_bytes)"}, status_code=413)(
            {"type": "http"}, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


UNAUTHORIZED = ("missing or wrong token: send Authorization: Bearer <token>; the token is "
                "http.api_token (WABOT_HTTP__API_TOKEN) or, when that is unset, the file "
                "console-token in the state directory")


def client_of(request: Request) -> str:
    return request.client.host if request.client else "?"


_BEARER = HTTPBearer(auto_error=False, scheme_name="token",
                     description="http.api_token, or the console-token file in the state "
                                 "directory")


def require_bearer(request: Request,
                   _: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
                   = None) -> None:
    """The API's token (declared to /openapi.json and /docs as a bearer scheme)."""
    auth: Auth = request.app.state.auth
    if auth.bearer_ok(request.headers.get("authorization")):
        return  # the right token always gets in: the limiter slows guessing only
    client = client_of(request)
    if auth.limited(client):
        raise HTTPException(429, "too many failed attempts: wait a minute",
                            headers={"Retry-After": "60"})
    auth.failed(client)
    raise HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})


def build_app(console: Console, auth: Auth, *, max_body_bytes: int = 1024 * 1024,
              extra_routers: Sequence[APIRouter] = (),
              consoles: Consoles | None = None) -> FastAPI:
    """The console's ASGI app. `extra_routers` are mounted as they are (see the module).
    `console` is the configured number's; `consoles` every number's (`bot.web.directory`;
    default: that one number)."""
    app = FastAPI(title="wabot", version="1", docs_url="/docs", redoc_url=None,
                  openapi_url="/openapi.json",
                  description="The owner's console of the business's WhatsApp numbers: "
                              "/api/v1 is the configured number's, /api/v1/numbers/{key} "
                              "any number's.")
    app.state.console = console
    # No console: the routes only, for the OpenAPI document (`tests/docs/generate.py`).
    consoles = consoles or (Consoles(console) if console is not None else None)
    app.state.consoles = consoles
    app.state.auth = auth
    app.state.flash = pages.Flash()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 401 and pages.wants_html(request):
            return pages.to_login(request)
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "invalid request: " + "; ".join(problems)}, 422)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        if pages.wants_html(request):  # /n/<key> of a number the fleet does not have
            return pages.error_page(request, exc, 404)
        return JSONResponse({"error": str(exc)}, 404)

    @app.exception_handler(InvalidNumber)
    async def invalid_number(request: Request, exc: InvalidNumber) -> Response:
        return JSONResponse({"error": str(exc)}, 422)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> Response:
        return JSONResponse({"error": str(exc)}, 400)

    @app.exception_handler(linking.InvalidPhone)
    async def invalid_phone(request: Request, exc: linking.InvalidPhone) -> Response:
        return JSONResponse({"error": str(exc)}, 422)

    @app.exception_handler(linking.AlreadyLinked)
    async def already_linked(request: Request, exc: linking.AlreadyLinked) -> Response:
        return JSONResponse({"error": str(exc)}, 409)

    @app.exception_handler(linking.NotReady)
    async def not_ready(request: Request, exc: linking.NotReady) -> Response:
        return JSONResponse({"error": str(exc)}, 503, headers={"Retry-After": "5"})

    @app.exception_handler(ServedElsewhere)
    async def served_elsewhere(request: Request, exc: ServedElsewhere) -> Response:
        headers = {"Retry-After": "5"} if exc.status == 503 else None
        return JSONResponse({"error": str(exc)}, exc.status, headers=headers)

    @app.exception_handler(SendFailed)
    async def send_failed(request: Request, exc: SendFailed) -> Response:
        return JSONResponse({"error": str(exc)}, 502)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "whatsapp": console.connection()["status"]}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        if consoles is not None:
            await refresh_gauges(consoles)
        return Response(console.metrics.render(),
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    bearer = [Depends(require_bearer)]
    app.include_router(api.router(), dependencies=bearer)
    app.include_router(alerts.api_router(), dependencies=bearer)
    app.include_router(numbers.router(), dependencies=bearer)
    app.include_router(api.router("/api/v1/numbers/{key}", api.number_console,
                                  "one number"), dependencies=bearer)
    app.include_router(alerts.api_router("/api/v1/numbers/{key}", api.number_console,
                                         "one number"), dependencies=bearer)
    app.include_router(pages.router())
    app.include_router(alerts.page_router())
    app.include_router(fleet.router())
    app.include_router(pages.router("/n/{key}"))
    app.include_router(alerts.page_router("/n/{key}"))
    for extra in extra_routers:
        app.include_router(extra)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app


async def refresh_gauges(consoles: Consoles) -> None:
    """The gauges of every number this node serves (labelled with its key)."""
    consoles.home.metrics.clear_gauges()
    for console in consoles.served():
        await _gauges(console)


async def _gauges(console: Console) -> None:
    m, n = console.metrics, console.tenant
    today = await console.today()
    live = console.live() if console.live is not None else None
    if live is not None:  # since start, as the metrics say (the page shows today's)
        m.turns.labels(n).set(live.turns)
        m.turn_failures.labels(n).set(live.failures)
    m.agents_cached.labels(n).set(today["agents_cached"])
    m.followups_pending.labels(n).set(today["followups_pending"])
    m.journal_backlog.labels(n).set(today["journal_backlog"])
    m.connected.labels(n).set(1 if console.connection()["connected"] else 0)
    m.outbox_depth.labels(n).set(await console.outbox.count())


class Ahead:
    """`app`, but the paths of `direct` go straight to their own ASGI app."""

    def __init__(self, app: ASGIApp, direct: dict[str, ASGIApp]) -> None:
        self.app = app
        self.direct = direct

    @classmethod
    def of(cls, app: ASGIApp, routers: Sequence[APIRouter]) -> ASGIApp:
        """`app` with the plain ASGI endpoints at fixed paths of `routers` ahead of it (the
        first of a path wins, as in `app`'s own routing)."""
        direct: dict[str, ASGIApp] = {}
        for router in routers:
            for route in router.routes:
                if (isinstance(route, Route) and "{" not in route.path
                        and not inspect.isfunction(route.endpoint)
                        and not inspect.ismethod(route.endpoint)):
                    direct.setdefault(route.path, route.endpoint)
        return cls(app, direct) if direct else app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        direct = self.direct.get(scope["path"]) if scope["type"] == "http" else None
        await (direct or self.app)(scope, receive, send)


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the daemon's signal handlers stay in charge


class WebServer:
    def __init__(self, console: Console, auth: Auth, settings: HttpSettings, *,
                 extra_routers: Sequence[APIRouter] = (),
                 consoles: Consoles | None = None) -> None:
        self.settings = settings
        self.app = build_app(console, auth, max_body_bytes=settings.max_body_bytes,
                             extra_routers=extra_routers, consoles=consoles)
        self.asgi = Ahead.of(self.app, extra_routers)
        self._server: _Server | None = None
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = settings.port

    @property
    def url(self) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def node_url(self) -> str:
        """Where the other nodes of the fleet reach this console: `url`, with this host's
        name for a wildcard address (0.0.0.0, ::), which names no machine to them."""
        if self.settings.public_url or self.settings.host not in ("0.0.0.0", "::", ""):
            return self.url
        return f"http://{socket.gethostname()}:{self.port}"

    def _bind(self) -> socket.socket:
        host, port = self.settings.host, self.settings.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when
        # the socket says it is TCP (otherwise Nagle + delayed ACKs add 40 ms per response).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ConsoleError(f"the console cannot listen on {host}:{port} ({exc.strerror}): "
                               "set http.port (WABOT_HTTP__PORT) to a free port, or "
                               "http.enabled = false") from None
        sock.listen(128)
        sock.setblocking(False)
        return sock

    async def start(self) -> None:
        self._socket = self._bind()
        self.port = self._socket.getsockname()[1]
        proxies = self.settings.trusted_proxies
        config = uvicorn.Config(self.asgi, log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=5, server_header=False,
                                # Meta keeps its webhook connections open: closed after
                                # uvicorn's 5 idle seconds, a delivery sent just then on
                                # the closing connection failed and came again (nginx and
                                # aiohttp keep 75 s).
                                timeout_keep_alive=75,
                                # uvicorn believes X-Forwarded-For from loopback by default:
                                # anyone local could then rotate it past the login limiter.
                                proxy_headers=bool(proxies),
                                forwarded_allow_ips=proxies or None)
        config.load()
        server = _Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[self._socket])
        self._server = server
        self._task = asyncio.create_task(server.main_loop(), name="console")
        logger.info("console listening on {}", self.url)

    async def stop(self) -> None:
        server, task = self._server, self._task
        if server is None or task is None:
            return
        server.should_exit = True
        with suppress(asyncio.CancelledError):
            await task
        await server.shutdown(sockets=[self._socket] if self._socket else None)
        if self._socket is not None:
            self._socket.close()
        self._server = self._task = self._socket = None
