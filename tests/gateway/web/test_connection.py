"""Connecting, staying connected, logging in and giving up: the gateway's lifecycle."""

from __future__ import annotations

import asyncio
import ctypes
import io
import random
import re
import stat
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from neonize.aioze import events as neonize_events
from neonize.aioze.client import NewAClient
from neonize.aioze.events import (
    ConnectedEv,
    ConnectFailureEv,
    DisconnectedEv,
    LoggedOutEv,
    MessageEv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from neonize.events import EVENT_TO_INT
from neonize.exc import PairPhoneError
from neonize.proto.Neonize_pb2 import LOGGED_OUT, SERVICE_UNAVAILABLE, TemporaryBan

from bot.gateway.web.gateway import GatewayExit, NeonizeGateway
from bot.models import InboundMessage
from tests.gateway.web.builders import GROUP, StandInClient, StandInFactory, event, jid, text
from tests.gateway.web.conftest import RecordingClock, free_port

# --- reachability probe before the Go layer may connect ------------------------------------


async def test_unreachable_whatsapp_is_retried_with_capped_backoff_and_go_never_runs(
    make_gateway: Callable[..., NeonizeGateway],
    factory: StandInFactory,
    clock: RecordingClock,
    statuses: list[str],
    tmp_path: Path,
) -> None:
    linked = tmp_path / "state" / "whatsapp-session.sqlite3"  # linked before: not a first start
    linked.parent.mkdir(mode=0o700)
    linked.write_bytes(b"SQLite format 3\x00")
    port = free_port()
    gateway = make_gateway(
        probe_port=port, backoff_initial=2, backoff_cap=30, backoff_jitter=0
    )
    await gateway.start()
    assert gateway.task is not None

    await clock.run_until(clock.now() + timedelta(seconds=200), tasks=[gateway.task])

    assert clock.sleeps[:8] == [2, 4, 8, 16, 30, 30, 30, 30]
    assert factory.clients == []  # no Go client while the probe fails
    assert re.fullmatch(r"offline: WhatsApp unreachable \(.+\); retrying in 30 s", statuses[-1])
    assert not gateway.connected.is_set()

    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    async with server:
        await clock.advance(30)
        client = await factory.next_client()
    assert client.called("connect") == [((), {})]


async def test_at_first_start_the_wait_is_short_and_says_the_qr_comes_once_connected(
    make_gateway: Callable[..., NeonizeGateway],
    clock: RecordingClock,
) -> None:
    gateway = make_gateway(
        probe_port=free_port(), backoff_initial=2, backoff_cap=300,
        backoff_jitter=0)
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message}")
    try:
        await gateway.start()
        assert gateway.task is not None
        await clock.run_until(clock.now() + timedelta(seconds=120), tasks=[gateway.task])
    finally:
        logger.remove(sink)
    assert clock.sleeps[:6] == [2, 4, 8, 15, 15, 15]  # a person is watching: capped lower
    assert "the QR code to scan appears here once connected; retrying in 15 s" in lines[-1]


async def test_backoff_jitter_stays_within_ten_percent_and_under_the_cap(
    make_gateway: Callable[..., NeonizeGateway],
) -> None:
    gateway = make_gateway(backoff_initial=2, backoff_cap=300, rng=random.Random(7))

    delays = [gateway.connection.probe.delay(attempt) for attempt in range(12)]

    for attempt, delay in enumerate(delays):
        base = min(300, 2 * 2**attempt)
        assert base * 0.9 <= delay <= min(300, base * 1.1)
    assert len(set(delays)) == len(delays)


async def test_start_returns_before_connecting(
    make_gateway: Callable[..., NeonizeGateway], factory: StandInFactory
) -> None:
    gateway = make_gateway()

    await gateway.start()

    assert factory.clients == []  # the probe runs in the background
    await factory.next_client()


# --- connected, disconnected ----------------------------------------------------------------


async def test_connected_sets_the_event_and_reports_our_number(
    running: tuple[NeonizeGateway, StandInClient], statuses: list[str]
) -> None:
    gateway, client = running

    await client.fire(ConnectedEv, ConnectedEv(status=True))

    assert gateway.connected.is_set()
    assert gateway.connected_as == "+5215598765432"
    assert statuses[-1] == "connected as +52155****5432"


async def test_disconnect_clears_the_event(
    running: tuple[NeonizeGateway, StandInClient], statuses: list[str]
) -> None:
    gateway, client = running
    await client.fire(ConnectedEv, ConnectedEv(status=True))

    await client.fire(DisconnectedEv, DisconnectedEv(status=True))

    assert not gateway.connected.is_set()
    assert statuses[-1].startswith("offline:")
    assert not gateway.finished.done()


async def test_session_file_is_owner_only_and_state_dir_created_0700(
    running: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = running

    assert client.session == str(gateway.session_path)
    assert stat.S_IMODE(gateway.session_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(gateway.state_dir.stat().st_mode) == 0o700


# --- giving up: operator action needed ------------------------------------------------------


async def test_logged_out_finishes_and_removes_the_stale_session(
    running: tuple[NeonizeGateway, StandInClient], log_records: list[dict[str, Any]]
) -> None:
    gateway, client = running
    gateway.session_path.write_bytes(b"SQLite format 3\x00 keys of a dead device")
    await client.fire(ConnectedEv, ConnectedEv(status=True))

    await client.fire(LoggedOutEv, LoggedOutEv(OnConnect=False, Reason=LOGGED_OUT))

    assert await asyncio.wait_for(gateway.finished, 5) is GatewayExit.LOGGED_OUT
    assert GatewayExit.LOGGED_OUT.needs_operator
    assert not gateway.session_path.exists()
    assert client.called("stop")
    assert not gateway.connected.is_set()
    assert any("run `wabot login` to scan a new QR" in r["message"] for r in log_records)


async def test_stream_replaced_finishes_and_keeps_the_session(
    running: tuple[NeonizeGateway, StandInClient], log_records: list[dict[str, Any]]
) -> None:
    gateway, client = running
    gateway.session_path.write_bytes(b"SQLite format 3\x00")

    await client.fire(StreamReplacedEv, StreamReplacedEv())

    assert await asyncio.wait_for(gateway.finished, 5) is GatewayExit.STREAM_REPLACED
    assert gateway.session_path.exists()
    assert client.called("stop")
    assert any("another WhatsApp Web session" in r["message"] for r in log_records)


async def test_go_client_ending_on_its_own_is_a_failure(
    running: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = running
    assert client.go_task is not None
    await client.fire(ConnectedEv, ConnectedEv())  # once linked; before, it is retried

    client.go_task.set_exception(RuntimeError("Neonize() returned: database is locked"))

    exit = await asyncio.wait_for(gateway.finished, 5)
    assert exit is GatewayExit.FAILED
    assert not exit.needs_operator
    assert "database is locked" in gateway.status


# --- temporary trouble: keep going -----------------------------------------------------------


async def test_temporary_ban_waits_for_the_expiry_then_reconnects(
    running: tuple[NeonizeGateway, StandInClient],
    factory: StandInFactory,
    clock: RecordingClock,
    statuses: list[str],
) -> None:
    gateway, client = running
    await client.fire(ConnectedEv, ConnectedEv(status=True))

    await client.fire(
        TemporaryBanEv, TemporaryBanEv(Code=TemporaryBan.SEND_TO_TOO_MANY_PEOPLE, Expire=3600)
    )
    await clock.settle([gateway.task])

    assert "temporarily banned by WhatsApp until 2026-01-05 10:00 UTC" in statuses
    assert client.called("stop")
    assert not gateway.finished.done()
    assert clock.sleeps[-1] == 3602

    await clock.advance(3602)
    second = await factory.next_client(2)
    assert second.uuid != client.uuid  # a fresh Go client, never the stopped one's id


async def test_connect_failure_reconnects_after_a_backoff(
    running: tuple[NeonizeGateway, StandInClient],
    factory: StandInFactory,
    clock: RecordingClock,
) -> None:
    gateway, client = running

    await client.fire(
        ConnectFailureEv, ConnectFailureEv(Reason=SERVICE_UNAVAILABLE, Message="try later")
    )
    await clock.settle([gateway.task])
    await clock.advance(clock.sleeps[-1])

    await factory.next_client(2)
    assert not gateway.finished.done()


# --- login: QR code and pair code ----------------------------------------------------------


async def test_qr_code_goes_to_the_terminal_and_a_png_until_connected(
    running: tuple[NeonizeGateway, StandInClient], statuses: list[str], console: io.StringIO
) -> None:
    gateway, client = running

    await client.show_qr()

    png = gateway.qr_png_path
    assert png.read_bytes().startswith(b"\x89PNG")
    assert stat.S_IMODE(png.stat().st_mode) == 0o600
    assert statuses[-1] == f"waiting for QR scan (see journalctl or {png})"
    lines = console.getvalue().splitlines()
    assert len(lines) > 10 and all(set(line) <= set(" ▀▄█") for line in lines)

    await client.fire(ConnectedEv, ConnectedEv(status=True))

    assert not png.exists()


async def test_pair_code_is_requested_once_and_printed_with_instructions(
    make_gateway: Callable[..., NeonizeGateway],
    factory: StandInFactory,
    statuses: list[str],
    console: io.StringIO,
) -> None:
    gateway = make_gateway(pair_phone="+5215598765432")
    await gateway.start()
    client = await factory.next_client()

    await client.show_qr()
    await client.show_qr(b"2@next-qr,ref,key")

    assert [args for args, _ in client.called("PairPhone")] == [("5215598765432", True)]
    out = console.getvalue()
    assert "WhatsApp pair code for +52155****5432: ABCD-EFGH" in out
    assert "Link with phone number instead → enter ABCD-EFGH" in out
    assert "▀" not in out  # no QR art when pairing by code
    assert statuses[-1] == "waiting for pair code ABCD-EFGH to be entered on +52155****5432"


async def test_a_failed_pair_code_falls_back_to_the_qr_code(
    make_gateway: Callable[..., NeonizeGateway],
    factory: StandInFactory,
    statuses: list[str],
    console: io.StringIO,
    log_records: list[dict[str, Any]],
) -> None:
    gateway = make_gateway(pair_phone="+5215598765432")
    await gateway.start()
    client = await factory.next_client()
    client.failures["PairPhone"] = PairPhoneError("client is nil")

    await client.show_qr()

    assert "▀" in console.getvalue()
    assert statuses[-1].startswith("waiting for QR scan")
    assert any("client is nil" in r["message"] for r in log_records if r["level"].name == "ERROR")


def test_pair_phone_must_be_e164(make_gateway: Callable[..., NeonizeGateway]) -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        make_gateway(pair_phone="5215598765432")


async def test_nobody_scanning_before_the_codes_run_out_finishes_the_gateway(
    running: tuple[NeonizeGateway, StandInClient], clock: RecordingClock
) -> None:
    gateway, client = running
    await client.show_qr()

    await clock.advance(76)

    assert await asyncio.wait_for(gateway.finished, 5) is GatewayExit.LOGIN_TIMEOUT
    assert not gateway.qr_png_path.exists()


# --- handlers never lose an exception ------------------------------------------------------


async def test_a_failing_handler_is_logged_with_its_context(
    running: tuple[NeonizeGateway, StandInClient], log_records: list[dict[str, Any]]
) -> None:
    gateway, client = running
    await client.fire(ConnectedEv, ConnectedEv(status=True))

    async def broken_inbox(message: InboundMessage) -> None:
        raise ValueError("inbox exploded")

    gateway.on_message(broken_inbox)
    await client.fire(MessageEv, event(text("hola"), msg_id="3EB0FAILED"))  # must not raise

    [record] = [r for r in log_records if r["level"].name == "ERROR"]
    assert record["extra"] == {"event": "MessageEv", "msg_id": "3EB0FAILED"}
    assert record["exception"] is not None
    assert "inbox exploded" in str(record["exception"].value)


async def test_dropped_messages_are_logged_with_a_reason_and_a_masked_chat(
    running: tuple[NeonizeGateway, StandInClient], log_records: list[dict[str, Any]]
) -> None:
    _, client = running
    await client.fire(ConnectedEv, ConnectedEv(status=True))

    await client.fire(MessageEv, event(text(), chat=jid(GROUP, "g.us"), is_group=True))

    [record] = [r for r in log_records if r["extra"].get("reason") == "group"]
    assert record["level"].name == "INFO"
    assert "5215512345678" not in record["message"]


# --- stop ---------------------------------------------------------------------------------


async def test_stop_is_idempotent_and_stops_the_go_client(
    running: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = running

    await gateway.stop()
    await gateway.stop()

    assert len(client.called("stop")) == 1
    assert gateway.finished.result() is GatewayExit.STOPPED
    assert gateway.task is not None and gateway.task.done()


async def test_stop_before_start(make_gateway: Callable[..., NeonizeGateway]) -> None:
    gateway = make_gateway()

    await gateway.stop()

    assert gateway.finished.result() is GatewayExit.STOPPED


# --- the real NewAClient accepts our registrations (offline) ---------------------------------


async def test_handlers_register_on_a_real_neonize_client(
    make_gateway: Callable[..., NeonizeGateway], tmp_path: Path
) -> None:
    gateway = make_gateway()
    client = NewAClient(str(tmp_path / "s.sqlite3"), uuid="wabot-test-registration")

    gateway.connection._register(client)

    registered = client.event.list_func
    assert registered[EVENT_TO_INT[MessageEv]] == gateway._on_message
    assert registered[EVENT_TO_INT[LoggedOutEv]] == gateway.connection.exits.on_logged_out
    assert len(registered) == 13  # + OfflineSyncPreview, OfflineSyncCompleted
    assert client.event._qr == gateway.connection.pairing.on_qr


async def test_real_neonize_dispatch_runs_the_guarded_handler(
    running: tuple[NeonizeGateway, StandInClient],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    log_records: list[dict[str, Any]],
) -> None:
    """The path Go takes: Event.execute on a foreign thread → run_coroutine_threadsafe."""
    gateway, stand_in = running
    await stand_in.fire(ConnectedEv, ConnectedEv(status=True))
    client = NewAClient(str(tmp_path / "s.sqlite3"), uuid="wabot-test-dispatch")
    gateway.connection._register(client)
    monkeypatch.setattr(neonize_events, "event_global_loop", asyncio.get_running_loop())
    logged = asyncio.Event()
    sink = logger.add(lambda message: logged.set(), level="ERROR")

    async def failing_inbox(message: InboundMessage) -> None:
        raise ValueError(f"inbox refused {message.msg_id}")

    gateway.on_message(failing_inbox)
    payload = event(text("hola"), msg_id="3EB0REAL").SerializePartialToString()
    buffer = ctypes.create_string_buffer(payload, len(payload))

    await asyncio.to_thread(
        client.event.execute, 0, ctypes.addressof(buffer), len(payload), EVENT_TO_INT[MessageEv]
    )
    await asyncio.wait_for(logged.wait(), 5)
    logger.remove(sink)

    [record] = [r for r in log_records if r["level"].name == "ERROR"]
    assert record["extra"] == {"event": "MessageEv", "msg_id": "3EB0REAL"}
