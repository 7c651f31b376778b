"""A tampered client could date a message in the year 5138 (WhatsApp Web: 10^14 ms; Cloud
API: 10^11 s) or in 1970: it sorted after every later message and stayed "recent" for
ever. A time more than a day ahead of arrival, or older than WhatsApp, is replaced by the
time the message arrived."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.clock import plausible
from bot.gateway.cloud.events import parse
from bot.models import InboundMessage
from tests.fakes import meta_webhooks as meta
from tests.gateway.web.builders import event, text
from tests.gateway.web.test_normalize import NOW, normalize

YEAR_5138_MS = 99_999_999_999_999
YEAR_5138_S = 99_999_999_999


@pytest.mark.parametrize("raw", [YEAR_5138_MS, YEAR_5138_S, 1, 1_000_000_000_000],
                         ids=["5138-ms", "5138-s", "1970-s", "2001-ms"])
async def test_whatsapp_web_message_times_that_cannot_be_are_the_arrival_time(raw):
    result = await normalize(event(text(), timestamp=raw))
    assert isinstance(result, InboundMessage)
    assert result.timestamp == NOW


@pytest.mark.parametrize("at", [YEAR_5138_S, 10**20, 5])
def test_cloud_api_message_times_that_cannot_be_are_the_arrival_time(at):
    now = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    events = parse(meta.envelope(messages=[meta.message("5215512345678", "text", at=at,
                                                        body="hola")]),
                   "t", "106540352242922", now)
    [msg] = events.messages
    assert msg.timestamp == now


def test_a_phone_clock_a_few_hours_off_is_kept():
    now = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    for sent in (now - timedelta(days=30), now + timedelta(hours=5)):
        assert plausible(sent, now) == sent
