"""The console of one node for a number another node serves: reads come from the shared
database, a pause reaches the serving node's cached agent, and a send is forwarded to the
serving node's console (or refused, naming it, when that cannot be done).

Two Apps in one test process stand for two nodes: each has its own stores, model client
and console on one PostgreSQL database of the test's own (`fleet_db_url`).
"""

from __future__ import annotations

import os
import uuid

import httpx
import pytest

from bot.clock import SystemClock
from bot.fleet.lease import Leases
from bot.fleet.numbers import NumberStore
from bot.models import CustomerKey
from tests.fakes.pipeline import eventually, make_settings, pipeline
from tests.web.conftest import TOKEN, client

pytestmark = pytest.mark.skipif(not os.environ.get("WABOT_TEST_POSTGRES_URL"),
                                reason="two nodes need PostgreSQL (WABOT_TEST_POSTGRES_URL)")

BOB = "+14155550123"


def _settings(url, tmp_path, openai_server, key):
    return make_settings(url, tmp_path / key, openai_server, key,
                         presenter={"enabled": False}, inbox={"debounce_seconds": 0},
                         http={"port": 0, "api_token": TOKEN})


async def test_another_nodes_number_is_read_paused_and_sent_to_through_this_console(
        fleet_db_url, tmp_path, openai_server):
    url = fleet_db_url
    a_key, b_key = f"shop-a-{uuid.uuid4().hex[:6]}", f"shop-b-{uuid.uuid4().hex[:6]}"
    async with pipeline(_settings(url, tmp_path, openai_server, b_key), serve_http=True) as b:
        db = b.app.shared.db
        profile = tmp_path / "north.yaml"  # its own business, in another time zone
        profile.write_text("name: Casa Norte\ntimezone: Europe/Madrid\n")
        await NumberStore(db, SystemClock()).add(b_key, business_file=str(profile))
        node_b = Leases(db, "node-b", 60)
        await node_b.ensure([b_key])
        lease = await node_b.acquire(b_key)
        assert lease is not None
        await node_b.beat(console_url=b.app.web.url)
        await b.say(BOB, "hello node b")
        await b.settle()
        bob = CustomerKey(b_key, BOB)
        assert bob in b.app.unit.registry  # its agent is cached on the serving node

        async with pipeline(_settings(url, tmp_path, openai_server, a_key),
                            serve_http=True) as a, client(a) as api:
            scoped = f"/api/v1/numbers/{b_key}"
            listed = await api.get(f"{scoped}/customers")
            assert [c["phone"] for c in listed.json()["items"]] == [BOB]
            lines = (await api.get(f"{scoped}/customers/{BOB[1:]}/messages")).json()["items"]
            assert [m["text"] for m in lines] == ["hello node b", "OK: hello node b"]
            assert (await api.get("/api/v1/customers")).json()["items"] == []  # a's own
            # Its follow-ups, as its job table holds them: cancelled here, never sent there.
            pending = (await api.get(f"{scoped}/followups")).json()["items"]
            assert [(f["phone"], f["kind"]) for f in pending] == [(BOB, "lead_silent")]
            gone = await api.delete(f"{scoped}/followups/{pending[0]['id']}")
            assert gone.status_code == 200
            assert b.app.unit.followups is not None
            assert await b.app.unit.followups.pending(BOB) == []
            assert (await api.delete(f"{scoped}/followups/{pending[0]['id']}")
                    ).status_code == 404

            # A pause written on node a: node b drops its cached copy and stays silent.
            paused = await api.post(f"{scoped}/customers/{BOB[1:]}/pause", json={"for": "1h"})
            assert paused.status_code == 200 and paused.json()["paused"] is True
            await eventually(lambda: bob not in b.app.unit.registry, within=15)
            answered = len(b.texts_to(BOB))
            await b.say(BOB, "anyone there?")
            await b.settle()
            assert len(b.texts_to(BOB)) == answered
            assert (await api.post(f"{scoped}/customers/{BOB[1:]}/resume")
                    ).json()["paused"] is False

            # A send goes out through node b, the number's owner.
            sent = await api.post(f"{scoped}/messages",
                                  json={"to": BOB, "text": "written on node a"})
            assert sent.status_code == 200, sent.text
            assert sent.json()["node"] == "node-b" and sent.json()["to"] == BOB
            assert b.texts_to(BOB)[-1] == "written on node a"
            assert a.gateway.sent == []

            # Never forwarded twice: a forwarded send for a number not served here is refused.
            again = await api.post(f"{scoped}/messages", json={"to": BOB, "text": "loop"},
                                   headers={"X-Wabot-Forwarded-By": "node-x"})
            assert again.status_code == 409 and "node-x" in again.json()["error"]

            async with httpx.AsyncClient(base_url=a.app.web.url, timeout=10,
                                         headers={"Accept": "text/html"}) as page:
                await page.post("/login", data={"token": TOKEN})
                fleet = (await page.get("/fleet")).text
                assert f'data-number="{b_key}"' in fleet and "node-b" in fleet
                # Its pages: its customers, at its business's time, labelled.
                chat = (await page.get(f"/n/{b_key}/customers/{BOB[1:]}")).text
                assert "hello node b" in chat and "2026-01-05 16:00 CET" in chat

            # Nobody serves it: nothing is sent, and the answer says why.
            await node_b.release(lease)
            idle = await api.post(f"{scoped}/messages", json={"to": BOB, "text": "x"})
            assert idle.status_code == 503 and "no node serves" in idle.json()["error"]
            # Its node has no console this node can reach: 409 naming the node.
            node_c = Leases(db, "node-c", 60)
            assert await node_c.acquire(b_key) is not None
            await node_c.beat()
            far = await api.post(f"{scoped}/messages", json={"to": BOB, "text": "x"})
            assert far.status_code == 409 and "node-c" in far.json()["error"]
            await node_c.leave()
            assert b.texts_to(BOB)[-1] == "written on node a"
