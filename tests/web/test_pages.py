"""The page over real HTTP: login (token, one-time link), session cookie, CSRF, what it shows."""

from __future__ import annotations

import re

import httpx
import pytest

from bot.models import CustomerKey
from bot.web.auth import login_code
from tests.web.conftest import TOKEN


@pytest.fixture
def served(served_by_one_or_two):
    """Every test here runs for a single number and beside a second one (issue #22)."""
    return served_by_one_or_two


ANA = "+5215512345678"
ANA_URL = "%2B5215512345678"
HTML = {"Accept": "text/html"}


def browser(p) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=p.app.web.url, headers=HTML, timeout=10)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def test_pages_need_a_login_and_a_wrong_token_is_refused(served):
    async with browser(served) as b:
        first = await b.get("/customers")
        assert first.status_code == 303 and first.headers["location"].startswith("/login")
        wrong = await b.post("/login", data={"token": "nope"})
        assert wrong.status_code == 401 and "Wrong token" in wrong.text
        assert "wabot_session" not in b.cookies
        ok = await b.post("/login", data={"token": TOKEN, "next": "/customers"})
        assert ok.status_code == 303 and ok.headers["location"] == "/customers"
        assert (await b.get("/customers")).status_code == 200


async def test_a_login_link_works_once(served):
    code = login_code(TOKEN)
    async with browser(served) as b:
        first = await b.get("/login", params={"code": code})
        assert first.status_code == 303 and "wabot_session" in b.cookies
    async with browser(served) as other:
        again = await other.get("/login", params={"code": code})
        assert again.status_code == 401 and "used already" in again.text
    async with browser(served) as forged:
        assert (await forged.get("/login", params={"code": login_code("other")})
                ).status_code == 401


async def test_state_changing_forms_need_the_sessions_csrf_token(served):
    await served.say(ANA, "hi")
    await served.settle()
    key = CustomerKey(served.settings.tenant, ANA)
    async with browser(served) as b:
        await b.post("/login", data={"token": TOKEN})
        page = await b.get(f"/customers/{ANA_URL}")
        assert page.status_code == 200
        token = csrf_of(page.text)
        for forged in ("", "0" * 64):
            refused = await b.post(f"/customers/{ANA_URL}/pause", data={"csrf": forged})
            assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
        assert (await served.app.unit.customers.get(key)).paused_until is None
        done = await b.post(f"/customers/{ANA_URL}/pause", data={"csrf": token, "hours": "1"})
        assert done.status_code == 303
        assert (await served.app.unit.customers.get(key)).paused_until is not None
    async with browser(served) as other:  # another session's token does not fit this one
        await other.post("/login", data={"token": TOKEN})
        refused = await other.post(f"/customers/{ANA_URL}/resume", data={"csrf": token})
        assert refused.status_code == 403


async def test_the_conversation_page_links_each_reply_to_its_run(served):
    await served.say(ANA, "what time do you open?")
    await served.settle()
    async with browser(served) as b:
        await b.post("/login", data={"token": TOKEN})
        page = (await b.get(f"/customers/{ANA_URL}")).text
        assert "what time do you open?" in page and "OK: what time do you open?" in page
        run_link = re.search(r'href="(/runs/\d+)"', page)
        assert run_link, "the agent's reply has no run link"
        run = (await b.get(run_link.group(1))).text
        assert "Why did it say that?" in run and "ask_for_human" in run
        csrf = csrf_of(page)
        sent = await b.post(f"/customers/{ANA_URL}/send",
                            data={"csrf": csrf, "text": "Ana, we open at 9"}, follow_redirects=True)
        assert "Sent as the business" in sent.text and "Ana, we open at 9" in sent.text
    assert served.texts_to(ANA)[-1] == "Ana, we open at 9"


async def test_the_dashboard_shows_today_the_charts_and_the_connection(served):
    await served.say(ANA, "hello")
    await served.settle()
    async with browser(served) as b:
        await b.post("/login", data={"token": TOKEN})
        page = (await b.get("/")).text
        assert re.search(r'data-testid="messages-in">1<', page)
        assert page.count('<figure class="chart">') == 3  # the three 30-day charts
        assert page.count('<div class="funnel-row"') == 4  # and the funnel's four stages
        assert "leads" in page and 'data-testid="connection-status"' in page
        live = await b.get("/connection")
        assert live.status_code == 200 and "WhatsApp" in live.text
        assert "cdn" not in page.lower()
