from __future__ import annotations

import pytest

from bot.phones import PhoneError, from_whatsapp, mask, parse_typed, whatsapp_forms


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


@pytest.mark.parametrize("user", ["12ab34", "1" * 40, "12345", "٥٢١٥٥١٢٣٤٥٦٧٨", "+5215512345678"])
def test_whatsapp_ids_that_are_not_6_to_15_ascii_digits_are_refused(user):
    with pytest.raises(PhoneError):
        from_whatsapp(user + "@s.whatsapp.net")


@pytest.mark.parametrize(("e164", "forms"), [
    ("+525512345678", ["+525512345678", "+5215512345678"]),
    ("+5215512345678", ["+5215512345678", "+525512345678"]),
    ("+541123456789", ["+541123456789", "+5491123456789"]),
    ("+5511987654321", ["+5511987654321", "+551187654321"]),
    ("+14155550123", ["+14155550123"]),
])
def test_the_forms_one_whatsapp_id_can_take(e164, forms):
    assert whatsapp_forms(e164) == forms
