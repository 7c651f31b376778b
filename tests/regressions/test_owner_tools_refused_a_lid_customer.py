"""A customer known only by LID (`lid:<digits>`) could not be named to the owner's tools
(`wabot pause`, `history`, the console's API all demanded a phone number), their key was
logged as a phone number with a '+' made up, and the Cloud API took it for a wa_id."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.gateway.base import GatewayError
from bot.gateway.cloud.gateway import CloudGateway
from bot.ops.logs import mask_text
from bot.phones import PhoneError, parse_customer
from bot.web.console import BadRequest, phone_of
from tests.cli.test_admin import env  # noqa: F401  (fixture)

LID_KEY = "lid:204060801234567"


def test_the_owner_names_a_lid_customer_by_its_key(env) -> None:  # noqa: F811
    assert parse_customer(LID_KEY) == LID_KEY
    assert parse_customer(" LID:204060801234567") == LID_KEY
    assert phone_of(LID_KEY) == LID_KEY
    assert parse_customer("g:120363025246125486") == "g:120363025246125486"
    with pytest.raises(PhoneError):
        parse_customer("lid:abc")  # not a key: read as a (bad) number
    with pytest.raises(BadRequest):
        phone_of("lid:")

    result = CliRunner().invoke(app, ["pause", LID_KEY, "--for", "2h", "--create"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"paused {LID_KEY} until ")


def test_a_lid_key_is_masked_in_logs_without_becoming_a_phone_number() -> None:
    assert mask_text(f"turn for {LID_KEY} failed") == "turn for lid:20****4567 failed"


def test_the_cloud_api_refuses_a_lid_key_instead_of_sending_to_it() -> None:
    gateway = CloudGateway.__new__(CloudGateway)  # chat_for reads no state

    with pytest.raises(GatewayError, match="no phone number"):
        gateway.chat_for(LID_KEY)
    assert gateway.chat_for("+5215512345678") == "5215512345678"
