"""A media id from a signed webhook went into a Graph URL as it came, sent with the access
token: `../../<number id>/messages` reached another endpoint, `123?fields=access_token`
asked for other fields. Only the digits Meta issues are accepted, at parse and at download."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from bot.clock import VirtualClock
from bot.gateway.cloud.events import parse
from bot.gateway.cloud.graph import CloudError, GraphAPI
from bot.settings import CloudSettings
from tests.fakes import meta_webhooks as meta

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
HOSTILE = ["../../15550100199/messages", "123?fields=access_token", "123#x", "12/34",
           "%2e%2e", " 123", "１２３", "1" * 33]


def media_of(media: object) -> str | None:
    payload = meta.envelope(messages=[meta.message("5215512345678", "image", id=media)])
    events = parse(payload, "t", meta.PHONE_NUMBER_ID, NOW)
    assert len(events.messages) == 1  # the message is kept (and answered), not its media
    return events.messages[0].media


@pytest.mark.parametrize("media", HOSTILE)
def test_a_media_id_that_is_not_digits_is_dropped(media):
    assert media_of(media) is None


def test_metas_digit_ids_still_pass():
    assert media_of("1234567890123456") == "1234567890123456"


@pytest.mark.parametrize("media", HOSTILE)
async def test_download_refuses_before_any_request(media):
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(500))
    async with httpx.AsyncClient(transport=transport) as client:
        graph = GraphAPI(CloudSettings(access_token="tok", phone_number_id="1"),
                         VirtualClock(NOW), client)
        with pytest.raises(CloudError, match="media id"):
            await graph.download(media, 1 << 20)
    assert seen == []
