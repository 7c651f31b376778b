"""The dashboard's 30-day charts and lifecycle funnel with no data and with 10,000
customers: well-formed markup, true scales (regression: with no data the charts claimed a
maximum of 1 and of $1.0000), readable numbers, every label HTML text beside the SVG (the
browser test measures them on a phone)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import httpx
from sqlalchemy import insert

from bot.stores.customers import CUSTOMERS, USAGE
from bot.web import charts
from tests.web.conftest import TOKEN
from tests.web.test_pages import HTML

STAGES = {"lead": 6000, "customer": 2500, "active_user": 1000, "churned": 500}


async def _svgs(p) -> list[ET.Element]:
    async with httpx.AsyncClient(base_url=p.app.web.url, headers=HTML, timeout=30) as b:
        await b.post("/login", data={"token": TOKEN})
        page = await b.get("/")
    assert page.status_code == 200
    found = re.findall(r'<figure class="chart">.*?</figure>', page.text, flags=re.S)
    found += re.findall(r'<div class="funnel".*?</div></div>', page.text, flags=re.S)
    assert len(found) == 4  # messages in, messages out, cost, the funnel
    charts = [ET.fromstring(html) for html in found]  # each one well-formed
    assert not [t for c in charts for t in c.iter("text")]  # no SVG text: it shrinks
    return charts


def _scale(chart: ET.Element) -> str:
    return "".join(chart.find("figcaption/span[@class='scale']").itertext())


def _funnel(chart: ET.Element) -> list[str]:
    return [span.text or "" for row in chart for span in row.iter("span")]


def _sizes(svg: ET.Element) -> list[float]:
    return [float(r.get(k, "0")) for r in svg.iter("rect") for k in ("height", "width")]


async def test_with_no_data_the_charts_say_so(served):
    *days, funnel = await _svgs(served)
    for chart in days:
        assert _scale(chart) == "no data yet"
        assert len(list(chart.iter("rect"))) == 30
        assert all(size >= 0 for size in _sizes(chart))
        assert {r.get("height") for r in chart.iter("rect")} == {"0.0"}
    assert _funnel(funnel)[1::2] == ["0", "0", "0", "0"]


async def test_with_10000_customers_the_funnel_and_charts_hold(served):
    now = served.clock.now()
    rows, usage = [], []
    for i, stage in enumerate(s for s, n in STAGES.items() for _ in range(n)):
        phone = f"+52155{i:08d}"
        rows.append({"tenant": served.settings.tenant, "phone": phone, "wa_jid": "",
                     "lid": "", "name": f"C{i}", "stage": stage, "opted_out": False,
                     "paused_until": None, "first_contact": now, "last_contact": now,
                     "last_inbound": now, "msgs_in": 1, "msgs_out": 1, "tokens_in": 1,
                     "tokens_out": 1})
        if i % 10 == 0:
            usage += [{"tenant": served.settings.tenant, "phone": phone,
                       "day": (now - timedelta(days=d)).date().isoformat(), "msgs_out": 2,
                       "tokens_in": 600, "tokens_out": 100} for d in range(0, 30, 3)]
    async with served.app.unit.db.begin() as conn:
        for chunk in range(0, len(rows), 2000):
            await conn.execute(insert(CUSTOMERS), rows[chunk:chunk + 2000])
        await conn.execute(insert(USAGE), usage)

    msgs_in, msgs_out, cost, funnel = await _svgs(served)
    assert _funnel(funnel) == [
        "leads", "6,000", "customers", "2,500", "active", "1,000", "churned", "500"]
    widths = [float(r.get("width", "0")) for r in funnel.iter("rect")]
    assert widths == sorted(widths, reverse=True) and widths[0] == 100
    assert _scale(msgs_in) == "no data yet"  # nobody wrote: usage has only replies
    assert _scale(msgs_out) == "max 2,000"  # 1,000 customers × 2 on every third day
    assert _scale(cost).startswith("max $")
    heights = [float(r.get("height", "0")) for r in msgs_out.iter("rect")]
    assert max(heights) == 120 and heights.count(120) == 10 and min(heights) == 0


def test_a_small_day_stays_visible_next_to_a_big_one():
    days = [{"day": "2026-01-01", "messages_in": 10_000}, {"day": "2026-01-02",
                                                           "messages_in": 1}]
    svg = ET.fromstring(charts.bars(days, "messages_in"))
    assert [r.get("height") for r in svg.iter("rect")] == ["120.0", "1.0"]
    assert _scale(svg) == "max 10,000"
