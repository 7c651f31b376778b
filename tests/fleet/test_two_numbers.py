"""One `wabot run` serving two Cloud API numbers: the configured one and one added as a row
(`wabot numbers add`), each with its own Graph API, one webhook for both on the console;
then a second process as the standby of both, taking both over when the first is killed.

Real processes on PostgreSQL: in the `chaos` group (`pytest -m chaos`).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg2
import pytest

from bot.clock import SystemClock
from bot.fleet.numbers import NumberStore
from bot.stores.db import Database
from tests.fakes import meta_webhooks as meta
from tests.fakes.graph_server import FakeGraph
from tests.fakes.openai_server import FakeOpenAI
from tests.fleet.test_two_nodes import LEASE, Node, _until

pytestmark = [pytest.mark.chaos, pytest.mark.skipif(
    not os.environ.get("WABOT_TEST_POSTGRES_URL"),
    reason="several nodes need PostgreSQL (set WABOT_TEST_POSTGRES_URL)")]

SECOND_ID = "209876543210987"
THIRD_ID = "309876543210987"


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(latency=0.05) as server:
        yield server


async def _add_second(url: str, tenant: str, graph: FakeGraph, suffix: str = "2") -> str:
    import bot.wiring  # noqa: F401  (every table)

    db = Database(url)
    try:
        await db.create_all()
        key = f"{tenant}-{suffix}"
        await NumberStore(db, SystemClock()).add(key, "cloud", {"cloud": {
            "phone_number_id": graph.phone_number_id, "graph_url": graph.graph_url,
            "access_token_env": "SECOND_NUMBER_TOKEN"}})
        return key
    finally:
        await db.close()


def _states(url: str) -> set[str]:
    conn = psycopg2.connect(url)
    try:
        cur = conn.cursor()
        cur.execute("SELECT state FROM numbers")
        return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


def _texts(graph: FakeGraph, token: str) -> int:
    return sum(token in c.body["text"]["body"] for c in graph.calls
               if c.body.get("type") == "text")


async def _post(node: Node, token: str, phone_number_id: str) -> int:
    payload = meta.envelope(messages=[meta.message("5215512345678", "text", f"wamid.{token}",
                                                   body=f"{token} hola")],
                            phone_number_id=phone_number_id)
    async with httpx.AsyncClient(timeout=30) as http:
        return await meta.deliver(http, node.daemon.url, payload, give_up=30)


async def test_one_process_serves_two_numbers_and_a_standby_takes_both_over(
        tmp_path: Path, llm: FakeOpenAI, fleet_db_url: str) -> None:
    url = fleet_db_url
    tenant = f"two-{uuid.uuid4().hex[:8]}"
    with FakeGraph() as home_a, FakeGraph(SECOND_ID) as second_a, \
            FakeGraph() as home_b:
        await _add_second(url, tenant, second_a)
        a = Node("node-a", tmp_path / "a", llm, home_a, tenant, url)
        b = Node("node-b", tmp_path / "b", llm, home_b, tenant, url)
        for n in (a, b):
            (tmp_path / n.name[-1]).mkdir()
            n.daemon.env["SECOND_NUMBER_TOKEN"] = second_a.token
        try:
            a.daemon.start()
            await a.daemon.ready()
            await _until(lambda: a.log().count("serves number") == 2, a)
            # One webhook on the console, each change to the number it names.
            await _post(a, "h1", home_a.phone_number_id)
            await _post(a, "s1", SECOND_ID)
            await _until(lambda: _texts(home_a, "h1") == 1 and _texts(second_a, "s1") == 1, a)
            assert _texts(home_a, "s1") == 0 and _texts(second_a, "h1") == 0
            # A number added while it runs is served within a renewal period.
            with FakeGraph(THIRD_ID) as third:
                await _add_second(url, tenant, third, "3")
                await _until(lambda: a.log().count("serves number") == 3, a)
                await _post(a, "t1", THIRD_ID)
                await _until(lambda: _texts(third, "t1") == 1, a)

            b.daemon.start()
            await b.daemon.ready()
            # `wabot numbers list` shows each one connected (written with the renewals).
            await _until(lambda: _states(url) == {"connected"}, a)
            # Its fair share: three numbers, two nodes, so the first gives one back (maybe
            # before the second has logged waiting for it); the second stands by for the
            # other two, which it takes over below.
            await _until(lambda: b.log().count("serves number") == 1, b)
            assert a.log().count("giving number") == 1
            await asyncio.sleep(4)  # three renewal periods: balanced, nothing moves any more
            assert b.log().count("serves number") == 1 and a.log().count("giving") == 1
            a.daemon.kill()
            await _post(b, "s2", SECOND_ID)
            await _post(b, "h2", home_b.phone_number_id)
            # The row's Graph URL is the first node's fake: the second number's replies
            # from node B arrive there too; the home number's at node B's own.
            await _until(lambda: _texts(second_a, "s2") == 1 and _texts(home_b, "h2") == 1,
                         b, within=LEASE + 15)
            assert b.log().count("serves number") == 3
        finally:
            for n in (a, b):
                n.daemon.stop()
