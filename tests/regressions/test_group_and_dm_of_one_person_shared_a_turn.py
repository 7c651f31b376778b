"""With groups enabled, one person's DM and their group message joined one batch, one turn
and one reply address (the DM's answer could land in the group), and a group's read receipt
named the group instead of the sender: real protobuf events through the stand-in Go layer."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from neonize.aioze.events import ConnectedEv, MessageEv

from bot.clock import VirtualClock
from bot.gateway.web.gateway import NeonizeGateway
from bot.gateway.web.tuning import Tuning
from bot.models import CustomerKey
from bot.settings import WhatsAppSettings
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pipeline import START, Pipeline, make_settings, pipeline
from tests.gateway.web.builders import (
    CUSTOMER,
    CUSTOMER_E164,
    GROUP,
    StandInClient,
    StandInFactory,
    event,
    jid,
    text,
)
from tests.gateway.web.conftest import reachable  # noqa: F401  (fixture)

OTHER = "14155550123"


@pytest.fixture
async def running(db_url: str, tmp_path: Path, openai_server: FakeOpenAI, tenant: str,
                  reachable: tuple[str, int],  # noqa: F811
                  ) -> AsyncIterator[tuple[Pipeline, StandInClient]]:
    clock = VirtualClock(START)
    factory = StandInFactory()
    gateway = NeonizeGateway(
        tenant,
        WhatsAppSettings(probe_host=reachable[0], probe_port=reachable[1], call_timeout=2.0),
        clock, state_dir=tmp_path / "wa", allow_groups=True,
        tuning=Tuning(client_factory=factory, console=io.StringIO()))
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             inbox={"allow_groups": True})
    async with pipeline(settings, clock=clock, gateway=gateway) as p:  # type: ignore[arg-type]
        client = await factory.next_client()
        await client.fire(ConnectedEv, ConnectedEv(status=True))
        yield p, client


async def test_a_persons_dm_and_group_message_are_separate_turns_with_their_own_replies(
    running: tuple[Pipeline, StandInClient], openai_server: FakeOpenAI,
) -> None:
    p, client = running
    group = jid(GROUP, "g.us")
    await client.fire(MessageEv, event(text("hola por privado"), msg_id="D1"))
    await client.fire(MessageEv, event(text("hola grupo"), msg_id="G1", chat=group,
                                       sender=jid(CUSTOMER, device=3), is_group=True))
    await client.fire(MessageEv, event(text("yo también"), msg_id="G2", chat=group,
                                       sender=jid(OTHER), is_group=True, push_name="Bob"))
    await p.settle()

    sent = {(a[0].User, a[0].Server): a[1].conversation
            for a, _ in client.called("send_message")}
    assert sent == {(CUSTOMER, "s.whatsapp.net"): "OK: hola por privado",
                    (GROUP, "g.us"): "OK: yo también"}
    prompts = [str(body["messages"]) for body in openai_server.chat_requests()]
    assert len(prompts) == 2  # two turns, neither seeing the other's messages
    dm = next(pr for pr in prompts if "hola por privado" in pr)
    assert "hola grupo" not in dm
    receipts = {(kw["chat"].User, kw["sender"].User, args)
                for args, kw in client.called("mark_read")}
    assert receipts == {(CUSTOMER, CUSTOMER, ("D1",)),  # a DM's sender is ignored by Go
                        (GROUP, CUSTOMER, ("G1",)), (GROUP, OTHER, ("G2",))}
    tenant = p.settings.tenant
    ana = await p.app.unit.customers.get(CustomerKey(tenant, CUSTOMER_E164))
    assert ana is not None and ana.wa_jid == f"{CUSTOMER}@s.whatsapp.net"  # follow-ups: DM
    assert await p.app.unit.customers.get(CustomerKey(tenant, f"g:{GROUP}")) is not None
