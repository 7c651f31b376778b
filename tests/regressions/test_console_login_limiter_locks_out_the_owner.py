"""The console's failed-login limiter locked the owner out: after a dozen wrong tokens the
right one was 429 as well, for a minute, on the API and on the login page. And it believed
`X-Forwarded-For` from loopback, so anyone on the machine reset their count by rotating the
header. The right token now always gets in; the header counts only from
`http.trusted_proxies`."""

from __future__ import annotations

import httpx

from tests.fakes.pipeline import make_settings, pipeline
from tests.web.conftest import TOKEN, console_settings, served  # noqa: F401  (fixtures)

WRONG = {"Authorization": "Bearer not-the-token"}


def plain(p) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=p.app.web.url, timeout=10)


async def test_the_right_token_gets_in_after_wrong_ones(served):  # noqa: F811
    async with plain(served) as c:
        for _ in range(12):
            await c.get("/api/v1/status", headers=WRONG)
        assert (await c.get("/api/v1/status", headers=WRONG)).status_code == 429
        right = await c.get("/api/v1/status", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 200, right.text
        for _ in range(12):
            await c.post("/login", data={"token": "nope"})
        assert (await c.post("/login", data={"token": "nope"})).status_code == 429
        page = await c.post("/login", data={"token": TOKEN})
        assert page.status_code == 303 and "wabot_session" in c.cookies


async def test_a_rotated_forwarded_for_does_not_reset_the_count(served):  # noqa: F811
    async with plain(served) as c:
        codes = [(await c.get("/api/v1/status", headers={
            **WRONG, "X-Forwarded-For": f"203.0.113.{n}"})).status_code for n in range(15)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429] * 5


async def test_a_trusted_proxy_names_the_client(db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False},
                             http={"port": 0, "api_token": TOKEN,
                                   "trusted_proxies": ["127.0.0.1"]})
    async with pipeline(settings, serve_http=True) as p, plain(p) as c:
        codes = [(await c.get("/api/v1/status", headers={
            **WRONG, "X-Forwarded-For": f"203.0.113.{n}"})).status_code for n in range(15)]
    assert codes == [401] * 15  # fifteen clients behind the proxy, one failure each
