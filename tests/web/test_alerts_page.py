"""The console's alerts page: unread count in the menu, mark read (one or all), the API."""

from __future__ import annotations

import re

from tests.web.conftest import TOKEN, client
from tests.web.test_pages import browser, csrf_of


async def test_the_alerts_page_lists_alerts_and_marks_them_read(served):
    alerts = served.app.unit.alerts
    await alerts.alert("human_requested", "+5215512345678 asks for a person: refund",
                       "+5215512345678")
    await alerts.alert("turn_failed", "a turn failed <script>")
    await alerts.drain()
    async with browser(served) as b:
        await b.post("/login", data={"token": TOKEN})
        home = await b.get("/")
        assert re.search(r'data-testid="alerts-unread">2<', home.text)
        page = await b.get("/alerts")
        assert page.status_code == 200 and "2 unread" in page.text
        assert "a turn failed &lt;script&gt;" in page.text  # escaped
        assert "/customers/5215512345678" in page.text
        ids = re.findall(r'name="alert_id" value="(\d+)"', page.text)
        assert len(ids) == 2
        refused = await b.post("/alerts/read", data={"csrf": "forged", "alert_id": ids[0]})
        assert refused.status_code == 403 and alerts.unread == 2
        one = await b.post("/alerts/read", data={"csrf": csrf_of(page.text),
                                                 "alert_id": ids[0]})
        assert one.status_code == 303 and one.headers["location"] == "/alerts"
        assert alerts.unread == 1
        page = await b.get("/alerts")
        assert "1 unread" in page.text
        await b.post("/alerts/read", data={"csrf": csrf_of(page.text)})
        assert alerts.unread == 0
        assert 'data-testid="alerts-unread"' not in (await b.get("/")).text


async def test_the_api_lists_alerts_with_the_unread_count_and_marks_them_read(served):
    alerts = served.app.unit.alerts
    await alerts.alert("daily_cap", "cap reached")
    await alerts.alert("turn_failed", "a turn failed")
    await alerts.drain()
    async with client(served) as api:
        got = (await api.get("/api/v1/alerts")).json()
        assert got["unread"] == 2 and [a["kind"] for a in got["items"]] == [
            "turn_failed", "daily_cap"]
        assert "Message yourself" in got["whatsapp"]
        first = got["items"][1]["id"]
        marked = (await api.post("/api/v1/alerts/read", json={"ids": [first]})).json()
        assert marked == {"marked": 1, "unread": 1}
        unread = (await api.get("/api/v1/alerts", params={"unread": True})).json()["items"]
        assert [a["kind"] for a in unread] == ["turn_failed"]
        assert (await api.post("/api/v1/alerts/read")).json() == {"marked": 1, "unread": 0}
    async with client(served, None) as anonymous:
        assert (await anonymous.get("/api/v1/alerts")).status_code == 401
