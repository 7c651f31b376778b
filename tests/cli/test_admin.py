"""`wabot pause | resume | status`, and the `owner` / `voice` simulation ops."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.cli.admin import parse_duration
from bot.models import CustomerKey
from bot.pipeline.inbox import Fed
from bot.pipeline.takeover import FOREVER
from bot.settings import load_settings
from bot.stores.customers import CustomerStore
from bot.stores.db import Database
from tests.fakes.pipeline import make_settings, pipeline

ROOT = Path(__file__).resolve().parents[2]
ANA = "+5215512345678"


@pytest.fixture
def env(tmp_path, openai_server, monkeypatch, db_url, tenant):
    for name in list(os.environ):
        if name.startswith(("WABOT_", "OPENAI_")) and not name.startswith("WABOT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    values = {"WABOT_STATE_DIR": str(tmp_path / "state"), "WABOT_DATABASE_URL": db_url,
              "WABOT_TENANT": tenant, "WABOT_LLM__BASE_URL": openai_server.base_url,
              "WABOT_LLM__API_KEY": "test", "WABOT_LLM__MAX_RETRIES": "0",
              "WABOT_BUSINESS_FILE": str(ROOT / "config" / "business.example.yaml")}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def wabot(*args: str):
    return CliRunner().invoke(app, list(args))


async def paused_until(db_url: str, tenant: str, phone: str) -> datetime | None:
    db = Database(db_url)
    try:
        customer = await CustomerStore(db).get(CustomerKey(tenant, phone))
    finally:
        await db.close()
    return customer.paused_until if customer else None


def test_pause_and_resume_with_the_daemon_stopped(env, db_url, tenant):
    result = wabot("pause", "+52 1 55 1234 5678", "--for", "2h", "--create")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"paused {ANA} until ")
    assert " CST: the agent" in result.output  # in the business's timezone
    until = asyncio.run(paused_until(db_url, tenant, ANA))
    assert until is not None
    assert abs(until - (datetime.now(UTC) + timedelta(hours=2))) < timedelta(minutes=1)
    assert wabot("pause", ANA).exit_code == 0
    assert asyncio.run(paused_until(db_url, tenant, ANA)) == FOREVER
    result = wabot("resume", ANA)
    assert result.exit_code == 0 and "resumed" in result.output
    assert asyncio.run(paused_until(db_url, tenant, ANA)) is None
    result = wabot("resume", ANA)
    assert result.exit_code == 0
    assert result.output == f"{ANA} was not paused: the agent already answers them\n"


def test_pause_and_resume_say_what_is_wrong(env):
    assert wabot("pause", ANA, "--for", "soon").exit_code == 2
    assert wabot("pause", "5512345678").exit_code == 2  # no country code
    result = wabot("resume", "+14155550000")
    assert result.exit_code == 1 and "is not a customer" in result.output


async def test_cli_pause_reaches_a_running_daemon_at_once(env, db_url, tmp_path, openai_server,
                                                          tenant):
    # The daemon and the command share the state directory (WABOT_STATE_DIR), as installed.
    settings = make_settings(db_url, tmp_path / "state", openai_server, tenant)
    async with pipeline(settings) as p:
        await p.say(ANA, "hello")
        await p.settle()
        result = await asyncio.to_thread(wabot, "pause", ANA)  # another process, in effect
        assert result.exit_code == 0, result.output
        assert await p.app.unit.inbox.feed(p.message(ANA, "are you there?")) is Fed.PAUSED
        result = await asyncio.to_thread(wabot, "resume", ANA)
        assert result.exit_code == 0, result.output
        assert await p.app.unit.inbox.feed(p.message(ANA, "hello again")) is Fed.QUEUED
        await p.settle()
        assert p.texts_to(ANA) == ["OK: hello", "OK: hello again"]


def test_status_of_a_stopped_daemon(env):
    result = wabot("status")
    assert result.exit_code == 3
    assert "daemon        not running" in result.output
    result = wabot("status", "--json")
    assert result.exit_code == 3
    assert json.loads(result.output)["running"] is False


async def test_status_of_a_running_daemon(env, db_url, tmp_path, openai_server, tenant):
    # A system clock: `wabot status` compares the heartbeat with the real time.
    from bot.clock import SystemClock
    from bot.gateway.memory import MemoryGateway

    settings = load_settings(None)
    clock = SystemClock()
    gateway = MemoryGateway(clock)
    gateway.connected_as = "+5215500000000"
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        await p.app.unit.monitor.beat()
        result = await asyncio.to_thread(wabot, "status")
    assert result.exit_code == 0, result.output
    assert "daemon        running · pid" in result.output
    assert "whatsapp      connected as +52155****0000" in result.output


def test_simulation_ops_for_the_owner_and_voice_notes(env, tmp_path, openai_server):
    openai_server.transcript = "is the shop open on sunday?"
    (tmp_path / "note.ogg").write_bytes(b"OggS" + b"\x00" * 64)
    scenario = tmp_path / "s.jsonl"
    scenario.write_text("\n".join(json.dumps(op) for op in [
        {"op": "voice", "at": 0, "from": ANA, "audio": "note.ogg"},
        {"op": "owner", "at": 60, "to": ANA, "text": "Yes, 10 to 2!"},
        {"op": "message", "at": 70, "from": ANA, "text": "great, thanks"},
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    result = wabot("simulate", str(scenario), "--out", str(out))
    assert result.exit_code == 0, result.output
    replies = [json.loads(line) for line in out.read_text().splitlines()]
    texts = [r["text"] for r in replies if r.get("kind") == "reply"]
    assert texts == ["OK: [voice note] is the shop open on sunday?"]  # then the owner took over


def test_a_missing_audio_file_names_the_line(env, tmp_path):
    scenario = tmp_path / "s.jsonl"
    scenario.write_text('{"op":"voice","at":0,"from":"+5215512345678","audio":"nope.ogg"}\n')
    result = wabot("simulate", str(scenario))
    assert result.exit_code == 2 and "line 1: audio file nope.ogg" in result.output


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "0m", "1h 30"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


async def test_a_pause_on_postgresql_is_told_to_the_node_serving_the_number(
        env, db_url, tenant):
    """Its cached agent may be on another machine, which the change stamp file never
    reaches: a row in customer_changes does (`bot.fleet.changes`)."""
    if db_url.startswith("sqlite"):
        pytest.skip("one machine: the change stamp file is enough")
    from bot.clock import SystemClock
    from bot.fleet.changes import CustomerChanges

    db = Database(db_url)
    try:
        await db.create_all()
        changes = CustomerChanges(db, SystemClock())
        await changes.start()
        heard: list[str] = []
        changes.follow(tenant, heard.append)
        result = await asyncio.to_thread(wabot, "pause", ANA, "--create")
        assert result.exit_code == 0, result.output
        await changes.poll()
        assert heard == [ANA]
    finally:
        await db.close()
