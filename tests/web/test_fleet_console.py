"""One console and API for two numbers in one process: the configured number (the home)
and a second one on the same stores, each scoped by its key; the unscoped routes stay the
home's."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from bot.models import CustomerKey
from tests.fakes.databases import db_url_of_its_own
from tests.fakes.pipeline import Pipeline, make_settings, pipeline
from tests.web.conftest import TOKEN, client

ANA = "+5215512345678"
BOB = "+14155550123"
HTML = {"Accept": "text/html"}

# The fleet page lists every number registered in the database: one of its own per test.
db_url = db_url_of_its_own("fleet_console")


@dataclass
class Two:
    home: Pipeline
    second: Pipeline

    @property
    def key(self) -> str:
        return self.second.settings.tenant


@pytest.fixture
async def two(console_settings, db_url, tmp_path, openai_server, tenant
              ) -> AsyncIterator[Two]:
    async with pipeline(console_settings, serve_http=True) as home:
        settings = make_settings(db_url, tmp_path / "second", openai_server, f"{tenant}-2",
                                 presenter={"enabled": False}, inbox={"debounce_seconds": 0})
        async with pipeline(settings, clock=home.clock, shared=home.app.shared) as second:
            home.app.consoles.add(second.app.console, second.app.serving)
            yield Two(home, second)


async def test_each_number_has_its_own_routes_and_the_unscoped_ones_are_the_homes(two):
    await two.home.say(ANA, "hola from the home number")
    await two.home.settle()
    await two.second.say(BOB, "hello second number")
    await two.second.settle()
    home, key = two.home.settings.tenant, two.key
    async with client(two.home) as api:
        def phones(resp: httpx.Response) -> list[str]:
            assert resp.status_code == 200, resp.text
            return [c["phone"] for c in resp.json()["items"]]

        assert phones(await api.get("/api/v1/customers")) == [ANA]
        assert phones(await api.get(f"/api/v1/numbers/{home}/customers")) == [ANA]
        assert phones(await api.get(f"/api/v1/numbers/{key}/customers")) == [BOB]
        assert (await api.get(f"/api/v1/numbers/{key}/status")).json()["tenant"] == key
        lines = (await api.get(f"/api/v1/numbers/{key}/customers/{BOB[1:]}/messages")
                 ).json()["items"]
        assert [m["text"] for m in lines] == ["hello second number", "OK: hello second number"]
        # A run, a customer: found under their own number only.
        run_id = lines[1]["run_id"]
        assert (await api.get(f"/api/v1/numbers/{key}/runs/{run_id}")).status_code == 200
        assert (await api.get(f"/api/v1/runs/{run_id}")).status_code == 404
        assert (await api.get(f"/api/v1/numbers/{key}/customers/{ANA[1:]}")).status_code == 404
        unknown = await api.get("/api/v1/numbers/no-such-number/customers")
        assert unknown.status_code == 404
        assert "no number 'no-such-number'" in unknown.json()["error"]
        bad = await api.get("/api/v1/numbers/" + "x" * 65 + "/customers")
        assert bad.status_code == 422

        paused = await api.post(f"/api/v1/numbers/{key}/customers/{BOB[1:]}/pause",
                                json={"for": "2h"})
        assert paused.status_code == 200 and paused.json()["paused"] is True
        bob = await two.second.app.unit.customers.get(CustomerKey(key, BOB))
        assert bob is not None and bob.paused_until is not None
        assert (await api.post(f"/api/v1/numbers/{key}/customers/{BOB[1:]}/resume")
                ).json()["paused"] is False

        sent = await api.post(f"/api/v1/numbers/{key}/messages",
                              json={"to": BOB, "text": "from the owner of the second"})
        assert sent.status_code == 200, sent.text
    assert two.second.texts_to(BOB)[-1] == "from the owner of the second"
    assert two.home.texts_to(BOB) == []


async def test_openapi_lists_the_scoped_routes(two):
    async with client(two.home) as api:
        paths = (await api.get("/openapi.json")).json()["paths"]
    for path in ("/api/v1/numbers/{key}/status", "/api/v1/numbers/{key}/customers",
                 "/api/v1/numbers/{key}/customers/{phone}/pause",
                 "/api/v1/numbers/{key}/messages", "/api/v1/numbers/{key}/followups/{fid}",
                 "/api/v1/numbers/{key}/runs/{run_id}"):
        assert path in paths, path


async def test_metrics_carry_the_number_label_for_both(two):
    await two.home.say(ANA, "hi")
    await two.home.settle()
    await two.second.say(BOB, "hi")
    await two.second.say(ANA, "hi too")
    await two.second.settle()
    async with client(two.home, token=None) as anon:
        text = (await anon.get("/metrics")).text
    home, key = two.home.settings.tenant, two.key
    assert f'wabot_messages_in_total{{kind="text",number="{home}"}} 1.0' in text
    assert f'wabot_messages_in_total{{kind="text",number="{key}"}} 2.0' in text
    for n in (home, key):
        assert f'wabot_whatsapp_connected{{number="{n}"}} 1.0' in text
        assert f'wabot_turn_seconds_count{{number="{n}"}}' in text
    assert f'wabot_agents_cached{{number="{key}"}} 2.0' in text
    series = [line for line in text.splitlines() if line.startswith("wabot_")]
    assert series and all('number="' in line for line in series)


async def test_pages_switch_numbers_and_the_fleet_page_lists_both(two):
    await two.home.say(ANA, "hola")
    await two.home.settle()
    await two.second.say(BOB, "hello")
    await two.second.settle()
    key = two.key
    async with httpx.AsyncClient(base_url=two.home.app.web.url, headers=HTML,
                                 timeout=10) as b:
        await b.post("/login", data={"token": TOKEN})
        home_list = (await b.get("/customers")).text
        assert ANA in home_list and BOB not in home_list
        assert 'data-testid="switcher"' in home_list
        second_list = await b.get(f"/n/{key}/customers")
        assert second_list.status_code == 200
        assert BOB in second_list.text and ANA not in second_list.text
        assert f'href="/n/{key}/customers/{BOB[1:]}"' in second_list.text
        conversation = await b.get(f"/n/{key}/customers/{BOB[1:]}")
        assert "hello" in conversation.text
        assert f'action="/n/{key}/customers/{BOB[1:]}/send"' in conversation.text
        switched = await b.get("/switch", params={"to": key, "from": "/customers/123"})
        assert switched.status_code == 303 and switched.headers["location"] == \
            f"/n/{key}/customers"
        back = await b.get("/switch", params={"to": two.home.settings.tenant,
                                              "from": f"/n/{key}/"})
        assert back.headers["location"] == "/"
        assert (await b.get("/switch", params={"to": "nope"})).status_code == 404
        missing = await b.get("/n/nope/customers")
        assert missing.status_code == 404 and "no number" in missing.text
        fleet = (await b.get("/fleet")).text
        rows = re.findall(r'<tr data-number="([^"]+)"', fleet)
        assert rows == [two.home.settings.tenant, key]
        assert "1 in · 1 out" in fleet
        # The form posted from the second number's page acts on the second number.
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', conversation.text).group(1)
        await b.post(f"/n/{key}/customers/{BOB[1:]}/send",
                     data={"csrf": csrf, "text": "hi Bob, Rosa here"})
    assert two.second.texts_to(BOB)[-1] == "hi Bob, Rosa here"


async def test_a_single_number_shows_no_switcher(served, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("the shared PostgreSQL may hold other tests' numbers")
    async with httpx.AsyncClient(base_url=served.app.web.url, headers=HTML, timeout=10) as b:
        await b.post("/login", data={"token": TOKEN})
        page = (await b.get("/customers")).text
    assert 'data-testid="switcher"' not in page and 'href="/fleet"' not in page
