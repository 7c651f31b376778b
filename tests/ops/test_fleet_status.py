"""`wabot status` shows the fleet after the number's own status: nodes alive, who serves
which number, leases about to lapse — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from bot.clock import SystemClock
from bot.fleet.lease import Leases
from bot.fleet.numbers import NumberStore
from bot.fleet.tables import NODES
from bot.ops.status import format_status, read_status, status_json
from bot.stores.db import Database
from tests.fakes.fleet import forget_rows, hold
from tests.fakes.pipeline import make_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def db(settings):
    database = Database(settings.sql_url)
    await database.create_all()
    yield database
    await database.close()
    await forget_rows(settings.sql_url, settings.tenant)


async def make_fleet(db: Database, url: str, t: str) -> None:
    """node-a serves two numbers, node-b one whose lease lapses in 5 s, node-c stopped
    beating, and one number waits for a node."""
    store = NumberStore(db, SystemClock())
    for name in ("n1", "n2", "n3", "n4"):
        await store.add(f"{t}-{name}")
    await store.set_state(f"{t}-n1", "connected")
    await hold(url, f"{t}-n1", f"{t}-node-a", ttl=30)
    await hold(url, f"{t}-n2", f"{t}-node-a", ttl=30)
    await hold(url, f"{t}-n3", f"{t}-node-b", ttl=5)
    await Leases(db, f"{t}-node-c", 30).beat()
    async with db.begin() as conn:
        await conn.execute(update(NODES).where(NODES.c.node == f"{t}-node-c").values(
            seen_at=NODES.c.seen_at - 100))


async def test_the_fleet_follows_the_numbers_own_status(settings, db):
    t = settings.tenant
    await make_fleet(db, settings.sql_url, t)
    status = await read_status(db, settings, datetime.now(UTC))
    assert status.fleet is not None
    shown = format_status(status).splitlines()
    alone = format_status(dataclasses.replace(status, fleet=None)).splitlines()
    assert shown[:len(alone)] == alone  # the single-number status first, unchanged
    fleet = shown[len(alone):]
    assert fleet[0].startswith("fleet         ")
    node_a = next(line for line in fleet if line.startswith(f"node          {t}-node-a "))
    assert f"pid {os.getpid()} on " in node_a
    assert node_a.endswith(f"): {t}-n1, {t}-n2 (linking)")
    assert any(line.startswith(f"node          {t}-node-b ") and line.endswith(
        f"{t}-n3 (linking)") for line in fleet)
    assert not any(line.startswith(f"node          {t}-node-c") for line in fleet)
    assert any(line.startswith("gone          ") and f"{t}-node-c (last seen 10" in line
               for line in fleet)
    assert any(line.startswith("unserved      ") and f"{t}-n4 (linking)" in line
               for line in fleet)
    expiring = [line for line in fleet if line.startswith("expiring")]
    assert [line.split()[1] for line in expiring if t in line] == [f"{t}-n3:"]
    assert "lease lapses in" in expiring[0] and "(epoch 1)" in expiring[0]
    if settings.sql_url.startswith("sqlite"):  # PostgreSQL may hold other tests' rows
        assert fleet[0] == ("fleet         2 node(s) alive · 4 number(s): 3 served, "
                            "1 waiting for a node")


async def test_the_fleet_in_json(settings, db):
    t = settings.tenant
    await make_fleet(db, settings.sql_url, t)
    fleet = status_json(await read_status(db, settings, datetime.now(UTC)))["fleet"]
    nodes = {n["node"]: n for n in fleet["nodes"]}
    assert nodes[f"{t}-node-a"]["alive"] and nodes[f"{t}-node-a"]["numbers"] == [
        f"{t}-n1", f"{t}-n2"]
    assert nodes[f"{t}-node-c"]["alive"] is False
    assert nodes[f"{t}-node-c"]["seen_seconds_ago"] >= 100
    numbers = {n["key"]: n for n in fleet["numbers"]}
    assert numbers[f"{t}-n3"]["owner"] == f"{t}-node-b"
    assert 0 < numbers[f"{t}-n3"]["lease_expires_in"] <= 5
    assert numbers[f"{t}-n4"]["owner"] is None
    assert f"{t}-n3" in fleet["expiring"] and f"{t}-n1" not in fleet["expiring"]


async def test_no_fleet_lines_before_there_is_a_fleet(tmp_path, openai_server, tenant):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    settings = make_settings(url, tmp_path, openai_server, tenant)
    db = Database(url)
    try:
        status = await read_status(db, settings, datetime.now(UTC))  # no tables at all
        assert status.fleet is None
        await db.create_all()  # the tables, but no number and no node yet
        status = await read_status(db, settings, datetime.now(UTC))
    finally:
        await db.close()
    assert status.fleet is None and status_json(status)["fleet"] is None
    assert "fleet" not in format_status(status)


def test_wabot_status_prints_the_fleet(settings, monkeypatch):
    from bot.cli import app

    t = settings.tenant
    monkeypatch.setenv("WABOT_DATABASE_URL", settings.sql_url)
    monkeypatch.setenv("WABOT_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("WABOT_TENANT", t)
    monkeypatch.setenv("WABOT_LLM__API_KEY", "test")
    monkeypatch.setenv("WABOT_BUSINESS_FILE", str(ROOT / "config" / "business.example.yaml"))

    async def fleet() -> None:
        db = Database(settings.sql_url)
        try:
            await db.create_all()
            await make_fleet(db, settings.sql_url, t)
        finally:
            await db.close()

    asyncio.run(fleet())
    try:
        result = CliRunner().invoke(app, ["status"])
    finally:
        asyncio.run(forget_rows(settings.sql_url, t))
    assert result.exit_code == 3, result.output  # no daemon for the tenant: as before
    assert result.output.startswith(f"wabot status · tenant {t}\n")
    assert f"node          {t}-node-a " in result.output
    assert f"expiring      {t}-n3: {t}-node-b's lease lapses in " in result.output
