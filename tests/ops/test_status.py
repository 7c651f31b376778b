"""The daemon's heartbeat and what `wabot status` makes of it."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from sqlalchemy import text

from bot.ops.status import (
    followup_table,
    format_status,
    read_heartbeat,
    read_status,
    status_json,
)
from bot.stores.db import Database
from tests.fakes.pipeline import START, make_settings, pipeline

ANA = "+5215512345678"
BOB = "+14155550123"


async def test_a_running_daemon_reports_itself_and_todays_numbers(settings):
    async with pipeline(settings) as p:
        p.gateway.connected_as = "+5215500000000"  # what the WhatsApp gateway knows
        await p.say(ANA, "hello")
        await p.say(BOB, "hi")
        await p.settle()
        await p.app.unit.inbox.feed(p.message(ANA, "I'll call you", from_owner=True))
        await p.app.unit.monitor.beat()
        now = p.clock.now()
        status = await read_status(p.app.unit.db, settings, now)
        assert status.running and status.heartbeat is not None
        assert status.heartbeat.pid == os.getpid()
        assert status.heartbeat.connected_as == "+5215500000000"
        assert status.heartbeat.agents_cached == 2
        assert (status.messages_in, status.messages_out) == (2, 2)  # the owner's line is not "in"
        assert (status.tokens_in, status.tokens_out) == (20, 10)
        assert status.cost == pytest.approx((20 * 0.15 + 10 * 0.60) / 1e6)
        assert status.paused == 1
        shown = format_status(status)
        assert "running · pid" in shown and "connected as +52155****0000" in shown
        assert "2 messages in · 2 out" in shown and "30 tokens (20 in / 10 out)" in shown
        assert "last error    none" in shown
        # A heartbeat older than three beats means the daemon died without stopping.
        later = await read_status(p.app.unit.db, settings, now + timedelta(seconds=16))
        assert not later.running and "it crashed or was killed" in format_status(later)


async def test_a_clean_stop_is_recorded(settings):
    async with pipeline(settings) as p:
        pass
    db = Database(settings.sql_url)
    try:
        status = await read_status(db, settings, p.clock.now() + timedelta(minutes=5))
    finally:
        await db.close()
    assert not status.running
    assert format_status(status).splitlines()[1] == (
        "daemon        stopped at 2026-01-05 15:00 UTC (5 min ago)")
    assert status_json(status)["running"] is False


async def test_the_last_error_reaches_the_heartbeat(settings, openai_server):
    openai_server.error(500, match="boom")
    async with pipeline(settings) as p:
        await p.say(ANA, "boom")
        await p.settle()
        await p.app.unit.monitor.beat()
        beat = await read_heartbeat(p.app.unit.db, settings.tenant)
        assert beat is not None and "HTTP 500" in beat.last_error
        # The debounce (2 s); the read receipt's pause (1 s) runs beside the model call.
        assert beat.last_error_at == START + timedelta(seconds=2)
        assert beat.failures == 1
        status = await read_status(p.app.unit.db, settings, p.clock.now())
        assert "last error    2026-01-05 15:00 UTC: turn failed: the model endpoint answered " \
               "HTTP 500" in format_status(status)


async def test_status_without_a_daemon(db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant)
    db = Database(settings.sql_url)
    try:
        status = await read_status(db, settings, START)
    finally:
        await db.close()
    assert status.heartbeat is None and not status.running
    assert "not running (it never started" in format_status(status)
    assert status.followups is None and "follow-ups    n/a" in format_status(status)


async def test_pending_follow_ups_are_counted_from_the_job_table(settings):
    table = followup_table(settings.tenant)
    db = Database(settings.sql_url)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text(f'CREATE TABLE "{table}" (id VARCHAR(191) PRIMARY KEY, '
                                    'next_run_time FLOAT, job_state BYTEA)'.replace(
                                        "BYTEA", "BLOB" if db.is_sqlite else "BYTEA")))
            await conn.execute(text(f"INSERT INTO \"{table}\" (id) VALUES ('a'), ('b')"))
        status = await read_status(db, settings, START)
        assert status.followups == 2
        assert "follow-ups    2 pending" in format_status(status)
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text(f'DROP TABLE "{table}"'))
        await db.close()
