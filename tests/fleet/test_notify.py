"""The fleet's one LISTEN connection per process: a notification wakes the number it
names (and one without a number wakes all), and nothing connects once it is closed."""

from __future__ import annotations

import asyncio
import os

import psycopg2
import pytest

from bot.fleet.notify import Wakeup

pytestmark = pytest.mark.skipif(not os.environ.get("WABOT_TEST_POSTGRES_URL"),
                                reason="LISTEN/NOTIFY is PostgreSQL's (set WABOT_TEST_POSTGRES_URL)")


async def test_a_notification_wakes_the_number_it_names_only(fleet_db_url: str) -> None:
    here, there = Wakeup(fleet_db_url), Wakeup(fleet_db_url)
    try:
        await here.start()
        await there.start()
        north, south, everything = (here.listener("north"), here.listener("south"),
                                    here.listener())
        woken: list[str] = []

        async def wait(name: str, listener: object) -> None:
            await listener.wait(2.0)  # type: ignore[attr-defined]
            woken.append(name)

        started = asyncio.get_running_loop().time()
        waits = [asyncio.create_task(wait(n, li)) for n, li in
                 (("north", north), ("south", south), ("everything", everything))]
        await asyncio.sleep(0.1)
        await there.notify("north")
        await asyncio.wait(waits, timeout=0.8)
        assert sorted(woken) == ["everything", "north"]  # south still waits
        await asyncio.gather(*waits)
        assert asyncio.get_running_loop().time() - started >= 2.0
    finally:
        await here.close()
        await there.close()


async def test_nothing_connects_once_closed(fleet_db_url: str) -> None:
    wakeup = Wakeup(fleet_db_url)
    await wakeup.start()
    assert wakeup.listening
    await wakeup.close()
    await wakeup.start()  # a number that began waiting while the process stopped
    assert not wakeup.listening


def _connections(url: str) -> int:
    conn = psycopg2.connect(url)
    try:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid()")
        return int(cur.fetchone()[0])
    finally:
        conn.close()


async def test_a_start_cancelled_while_connecting_leaves_no_connection(
        fleet_db_url: str) -> None:
    """The process stopped while a number's wait was connecting (CI saw the socket left to
    the garbage collector)."""
    wakeup = Wakeup(fleet_db_url)
    starting = asyncio.create_task(wakeup.start())
    await asyncio.sleep(0.005)  # the connection is being made
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    for _ in range(100):
        if await asyncio.to_thread(_connections, fleet_db_url) == 0:
            break
        await asyncio.sleep(0.05)
    assert await asyncio.to_thread(_connections, fleet_db_url) == 0
    assert not wakeup.listening
