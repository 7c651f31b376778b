from __future__ import annotations

import pytest

from bot.phones import PhoneError, from_whatsapp, mask, parse_typed


@pytest.mark.parametrize(("user", "e164"), [
    ("5215512345678", "+5215512345678"),  # legacy Mexican mobile form, kept as delivered
    ("5491123456789", "+5491123456789"),  # Argentine mobile with the 9
    ("14155550123:12@s.whatsapp.net", "+14155550123"),  # device suffix and server
])
def test_whatsapp_ids_are_kept_as_delivered(user, e164):
    assert from_whatsapp(user) == e164


def test_typed_numbers():
    assert parse_typed("+52 1 55 1234 5678") == "+5215512345678"
    assert parse_typed("0044 7700 900123") == "+447700900123"
    assert parse_typed("(415) 555-0123", "US") == "+14155550123"


@pytest.mark.parametrize("bad", ["", "hello", "+12", "5512345678"])
def test_bad_typed_numbers_say_why(bad):
    with pytest.raises(PhoneError):
        parse_typed(bad)


def test_mask_keeps_country_and_last_digits():
    assert mask("+5215512345678") == "+52155****5678"
    assert "12345" not in mask("+5215512345678")
