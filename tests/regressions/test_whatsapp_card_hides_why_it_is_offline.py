"""Issue #24 (Medium): the console's WhatsApp card said "offline: retrying in 15 s" without
the reason the terminal knew (a DNS failure), and offered the pair-code form, whose answer
("try again in a few seconds") never comes true while offline. The STATUS line now carries
the reason, and while offline no pair code is offered."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.web import linking
from tests.gateway.web.conftest import (  # noqa: F401  (fixtures)
    RecordingClock,
    clock,
    console,
    factory,
    free_port,
    make_gateway,
    reachable,
    statuses,
)
from tests.web.test_browser import LinkingGateway


def test_an_offline_card_says_why_and_offers_no_pair_code(tmp_path: Path) -> None:
    gateway = LinkingGateway(None, tmp_path)
    gateway.status = ("offline: WhatsApp unreachable (Temporary failure in name "
                      "resolution); retrying in 15 s")
    card = linking.connection(gateway)
    assert card["offline"] and not card["can_pair"]
    assert "name resolution" in card["status"]
    gateway.status = "waiting for QR scan (see journalctl or the console)"
    assert linking.connection(gateway)["can_pair"]  # a login on offer: the form is there


async def test_the_probe_puts_the_reason_on_the_status_line(
        make_gateway, clock: RecordingClock, statuses: list[str]) -> None:  # noqa: F811
    gateway = make_gateway(probe_port=free_port(),
                           backoff_initial=2, backoff_cap=30, backoff_jitter=0)
    await gateway.start()
    assert gateway.task is not None
    await clock.run_until(clock.now() + timedelta(seconds=10), tasks=[gateway.task])
    assert statuses[-1].startswith("offline: WhatsApp unreachable (")
    assert "refused" in statuses[-1].lower() and "retrying in" in statuses[-1]
    await gateway.stop()
