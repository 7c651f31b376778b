"""Issue #24 (Low): a clean exit 78 (the console's port in use) must not make the next start
alert the owner "restarted after a crash": the refused start records its stop like any
other, and the next start finds nothing to report."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from bot.app import App
from bot.gateway.memory import MemoryGateway
from bot.ops.status import HEARTBEATS, read_heartbeat
from bot.web.server import ConsoleError
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pipeline import START, make_settings


async def test_a_start_refused_for_a_port_in_use_is_no_crash(
        db_url: str, tmp_path: Path, openai_server: FakeOpenAI, tenant: str) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        busy = make_settings(db_url, tmp_path, openai_server, tenant,
                             http={"port": port, "api_token": "t" * 24})
        first = App(busy, MemoryGateway(), serve_http=True)
        with pytest.raises(ConsoleError):
            await first.start()
        await first.stop()  # as `serve` does on its way to exit 78
    finally:
        taken.close()
    async with first.shared.db.begin() as conn:  # that was another process, an hour ago
        await conn.execute(update(HEARTBEATS).where(HEARTBEATS.c.tenant == tenant).values(
            pid=999_999, beat_at=START - timedelta(hours=1)))
    beat = await read_heartbeat(first.shared.db, tenant)
    assert beat is not None and beat.stopped_at is not None  # its stop was recorded
    free = make_settings(db_url, tmp_path, openai_server, tenant,
                         http={"port": 0, "api_token": "t" * 24})
    again = App(free, MemoryGateway(), serve_http=True)
    await again.start()
    try:
        await again.unit.alerts.drain()
        assert [a["kind"] for a in again.unit.alerts.recent] == []
    finally:
        await again.stop()
