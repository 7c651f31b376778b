"""A 401 said "see `wabot console`", which prints a login link, not where the token is;
`/openapi.json` declared no bearer security scheme, so generated clients sent no token; and
`/docs` was 404. The 401 names the setting and the file, the API operations require the
bearer scheme, and `/docs` serves the API's page."""

from __future__ import annotations

import httpx

from tests.web.conftest import TOKEN, api, console_settings, served  # noqa: F401  (fixtures)


async def test_the_401_says_where_the_token_is(served):  # noqa: F811
    async with httpx.AsyncClient(base_url=served.app.web.url) as c:
        answer = await c.get("/api/v1/status")
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert "http.api_token" in error and "console-token" in error
    assert "see `wabot console`" not in error


async def test_openapi_declares_the_bearer_scheme_and_docs_serve_it(served, api):  # noqa: F811
    spec = (await api.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["token"] == {"type": "http", "scheme": "bearer",
                                "description": schemes["token"]["description"]}
    for path, ops in spec["paths"].items():
        for op in ops.values():
            assert op.get("security") == [{"token": []}], path
    async with httpx.AsyncClient(base_url=served.app.web.url) as c:
        docs = await c.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
