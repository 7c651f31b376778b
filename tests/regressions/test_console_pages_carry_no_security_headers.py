"""Console pages carried no security headers: any site could frame the "send as the
business" form, browsers guessed content types, the login link's code went out in the
Referer, and pages showing conversations were kept in the browser's cache. Every answer now
has a CSP with frame-ancestors 'none', nosniff and Referrer-Policy, and all but the static
files are `Cache-Control: no-store`."""

from __future__ import annotations

import httpx

from tests.web.conftest import TOKEN, api, console_settings, served  # noqa: F401  (fixtures)

ANA_URL = "%2B5215512345678"


def assert_secured(answer: httpx.Response, cached: bool = False) -> None:
    h = answer.headers
    csp = h.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, answer.url
    assert h.get("x-content-type-options") == "nosniff"
    assert h.get("x-frame-options") == "DENY"
    assert h.get("referrer-policy") == "no-referrer"
    assert (h.get("cache-control") == "no-store") is not cached, answer.url


async def test_every_console_answer_is_secured(served, api):  # noqa: F811
    await served.say("+5215512345678", "hola, soy Ana")
    await served.settle()
    async with httpx.AsyncClient(base_url=served.app.web.url,
                                 headers={"Accept": "text/html"}) as b:
        assert_secured(await b.get("/login"))
        await b.post("/login", data={"token": TOKEN})
        for path in ("/", f"/customers/{ANA_URL}", "/customers", "/connection"):
            page = await b.get(path)
            assert page.status_code == 200, path
            assert_secured(page)
        assert_secured(await b.get("/static/console.css"), cached=True)
    assert_secured(await api.get(f"/api/v1/customers/{ANA_URL}/messages"))
    assert_secured(await api.get("/api/v1/customers", headers={"Authorization": "Bearer x"}))
