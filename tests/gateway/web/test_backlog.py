"""WhatsApp Web's offline backlog and restrictions, through the stand-in Go layer with real
neonize protobuf events: messages between OfflineSyncPreview and OfflineSyncCompleted are
tagged backlog, completion follows them in Go's order; a temporary ban is recorded for
follow-ups and `wabot status`; logouts 403/406 say locked/banned instead of "scan a QR"."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from neonize.aioze.events import (
    ConnectedEv,
    LoggedOutEv,
    MessageEv,
    OfflineSyncCompletedEv,
    OfflineSyncPreviewEv,
    TemporaryBanEv,
)
from neonize.exc import SendMessageError
from neonize.proto.Neonize_pb2 import ConnectFailureReason, TemporaryBan

from bot.gateway.base import Binding, GatewayError
from bot.gateway.pacer import Pacer
from bot.gateway.phone import PhoneWatch
from bot.gateway.restrictions import FILE_NAME, TEMPORARY_BAN, TIMELOCK, Restrictions, read
from bot.gateway.web.gateway import NeonizeGateway
from bot.models import InboundMessage
from tests.gateway.web.builders import BUSINESS, CUSTOMER, StandInClient, event, jid, text
from tests.gateway.web.conftest import RecordingClock


async def test_messages_delivered_during_the_offline_sync_are_tagged_backlog(
    running: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = running
    seen: list[tuple[str, bool]] = []
    completions: list[list[str]] = []

    async def handle(message: InboundMessage) -> None:
        seen.append((message.msg_id, message.backlog))

    async def complete() -> None:
        completions.append([m for m, _ in seen])

    gateway.bind(Binding(on_message=handle, on_backlog_complete=complete))
    await client.fire(ConnectedEv, ConnectedEv(status=True))
    await client.fire(MessageEv, event(text("antes"), msg_id="LIVE0"))
    await client.fire(OfflineSyncPreviewEv, OfflineSyncPreviewEv(
        Total=3, AppDataChanges=0, Message=2, Notifications=1, Receipts=0))
    await client.fire(MessageEv, event(text("hola"), msg_id="OLD1"))
    await client.fire(MessageEv, event(text("¿siguen?"), msg_id="OLD2"))
    await client.fire(OfflineSyncCompletedEv, OfflineSyncCompletedEv(Count=3))
    await client.fire(MessageEv, event(text("ahora"), msg_id="LIVE1"))

    assert seen == [("LIVE0", False), ("OLD1", True), ("OLD2", True), ("LIVE1", False)]
    assert completions == [["LIVE0", "OLD1", "OLD2"]]  # after the backlog, before live


async def test_a_new_connection_ends_a_sync_that_never_completed(
    running: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = running
    seen: list[bool] = []

    async def handle(message: InboundMessage) -> None:
        seen.append(message.backlog)

    gateway.on_message(handle)
    await client.fire(ConnectedEv, ConnectedEv(status=True))
    await client.fire(OfflineSyncPreviewEv, OfflineSyncPreviewEv(
        Total=1, AppDataChanges=0, Message=1, Notifications=0, Receipts=0))
    await client.fire(ConnectedEv, ConnectedEv(status=True))  # dropped and back, no preview
    await client.fire(MessageEv, event(text("hola"), msg_id="LIVE2"))
    assert seen == [False]


async def test_a_temporary_ban_is_recorded_for_follow_ups_and_status(
    running: tuple[NeonizeGateway, StandInClient], clock: RecordingClock, tmp_path: Path,
) -> None:
    gateway, client = running
    restrictions = Restrictions(clock, tmp_path)
    gateway.bind(Binding(restrictions=restrictions))
    await client.fire(ConnectedEv, ConnectedEv(status=True))
    await client.fire(TemporaryBanEv, TemporaryBanEv(
        Code=TemporaryBan.SENT_TOO_MANY_SAME_MESSAGE, Expire=7200))
    await clock.settle([gateway.task])  # the client is stopped until the ban ends

    until = restrictions.proactive_until()
    assert until is not None and (until - clock.now()).total_seconds() == 7200
    [recorded] = read(tmp_path / FILE_NAME, clock.now())
    assert recorded.kind == TEMPORARY_BAN
    assert "temporary ban until 2026-01-05 11:00 UTC" in recorded.line()
    assert "SENT_TOO_MANY_SAME_MESSAGE" in recorded.line()


@pytest.mark.parametrize(("reason", "says", "not_said"), [
    (ConnectFailureReason.MAIN_DEVICE_GONE, "locked this number (reason 403)", "scan a new QR"),
    (ConnectFailureReason.UNKNOWN_LOGOUT, "banned this number (reason 406)", "scan a new QR"),
    (ConnectFailureReason.LOGGED_OUT, "scan a new QR", "banned"),
], ids=["403-locked", "406-banned", "401-new-qr"])
async def test_a_logout_says_why_and_asks_for_a_new_qr_only_when_one_helps(
    running: tuple[NeonizeGateway, StandInClient], statuses: list[str],
    reason: int, says: str, not_said: str,
) -> None:
    _, client = running
    await client.fire(ConnectedEv, ConnectedEv(status=True))
    await client.fire(LoggedOutEv, LoggedOutEv(OnConnect=True, Reason=reason))
    assert says in statuses[-1]
    assert not_said not in statuses[-1]


async def test_the_owner_is_warned_when_the_phone_shows_no_sign_for_ten_days(
    running: tuple[NeonizeGateway, StandInClient], clock: RecordingClock, tmp_path: Path,
) -> None:
    gateway, client = running
    watch = PhoneWatch(clock, tmp_path, timedelta(days=10))
    alerts: list[str] = []

    async def alert(subject: str, text: str) -> bool:
        alerts.append(text)
        return True

    gateway.bind(Binding(on_message=lambda m: asyncio.sleep(0), phone=watch))
    await client.fire(ConnectedEv, ConnectedEv(status=True))
    await clock.advance(9 * 86400)
    # A customer's message, and one this device sent (device 3): no sign of the phone.
    await client.fire(MessageEv, event(text("hola"), msg_id="C1"))
    await client.fire(MessageEv, event(text("eco"), msg_id="C2", from_me=True,
                                       sender=jid(BUSINESS, device=3)))
    assert not await watch.check(alert)
    await clock.advance(2 * 86400)
    assert await watch.check(alert)
    assert "no sign of the business phone for 11 days" in alerts[0]
    # The owner writes in "Message yourself" from the phone (device 0): the count restarts.
    await client.fire(MessageEv, event(text("nota"), msg_id="P1", from_me=True,
                                       chat=jid(BUSINESS), sender=jid(BUSINESS)))
    assert watch.silent_for() == timedelta(0)
    assert not await watch.check(alert)
    assert PhoneWatch(clock, tmp_path, timedelta(days=10)).seen_at == clock.now()  # kept


async def test_a_send_refused_with_463_by_whatsmeow_is_recorded_as_a_timelock(
    running: tuple[NeonizeGateway, StandInClient], clock: RecordingClock, tmp_path: Path,
) -> None:
    gateway, client = running
    restrictions = Restrictions(clock, tmp_path)
    gateway.bind(Binding(pacer=Pacer(clock, 20, 6, restrictions)))
    await client.fire(ConnectedEv, ConnectedEv(status=True))
    # neonize aioze/client.py send_message raises SendMessageError(model.Error), the text of
    # whatsmeow send.go's `fmt.Errorf("%w %d", ErrServerReturnedError, errorCode)`.
    client.failures["send_message"] = SendMessageError("server returned error 463")
    with pytest.raises(GatewayError):
        await gateway.send_text(f"{CUSTOMER}@s.whatsapp.net", "hola")
    assert [r.kind for r in restrictions.active()] == [TIMELOCK]
