"""`/connection` opened directly (a bookmark, a reloaded tab after the card updated)
rendered the dashboard's card alone, unstyled; `/favicon.ico` was 404 on every page. A
navigation to `/connection` goes to the dashboard, the card still answers console.js, and
the console has an icon."""

from __future__ import annotations

import httpx

from tests.web.conftest import TOKEN, console_settings, served  # noqa: F401  (fixtures)


async def test_the_card_opened_as_a_page_goes_to_the_dashboard(served):  # noqa: F811
    async with httpx.AsyncClient(base_url=served.app.web.url,
                                 headers={"Accept": "text/html"}) as b:
        await b.post("/login", data={"token": TOKEN})
        opened = await b.get("/connection", headers={"Sec-Fetch-Mode": "navigate"})
        assert opened.status_code == 303 and opened.headers["location"] == "/"
        fetched = await b.get("/connection", headers={"Sec-Fetch-Mode": "cors"})
        assert fetched.status_code == 200 and 'id="connection"' in fetched.text
        page = await b.get("/")
        assert 'rel="icon"' in page.text
    async with httpx.AsyncClient(base_url=served.app.web.url) as anyone:
        icon = await anyone.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg")
