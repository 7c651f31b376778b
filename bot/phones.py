"""Customer identity: phone numbers in E.164, tolerant of what WhatsApp really delivers."""

from __future__ import annotations

import re

import phonenumbers

_DIGITS = re.compile(r"\d+")


class PhoneError(ValueError):
    """A typed number that cannot be a phone number."""


def from_whatsapp(user: str) -> str:
    """E.164 for the user part of a WhatsApp phone JID (`5215512345678` → `+5215512345678`).

    Never rejects what WhatsApp delivered: legacy forms such as Mexico's `521…` and
    Argentina's `549…` are kept as they are, so one person stays one customer.
    """
    digits = "".join(_DIGITS.findall(user.split("@", 1)[0].split(":", 1)[0]))
    if not digits:
        raise PhoneError(f"no digits in WhatsApp user {user!r}")
    return "+" + digits


LID_PREFIX = "lid:"


def lid_customer(lid_user: str) -> str:
    """The customer key of someone WhatsApp showed us only by LID (`lid:<digits>`).

    Not a phone number on purpose: a LID's digits look like one but are not. The customer
    is merged into their phone number once it becomes known (`bot.stores.identity`).
    """
    return LID_PREFIX + lid_user.split("@", 1)[0].split(":", 1)[0]


def is_lid_customer(phone: str) -> bool:
    return phone.startswith(LID_PREFIX)


GROUP_PREFIX = "g:"
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def group_customer(group_user: str) -> str:
    """The conversation key of a WhatsApp group (`g:<id>`), when groups are enabled.

    A group is its own conversation, never one of its members: their DMs and the group's
    messages must not share a batch, a turn or a reply address, nor the DM's memory reach
    the group. Keys are stored in 20-character columns: a legacy `<creator>-<time>` id is
    written in base 36 (`g:<b36>-<b36>`) to fit; `group_jid` reverses both forms.
    """
    user = group_user.split("@", 1)[0]
    if len(GROUP_PREFIX + user) > 20 and re.fullmatch(r"\d+-\d+", user):
        user = "-".join(_to_b36(int(part)) for part in user.split("-"))
    return GROUP_PREFIX + user


def group_jid(key: str) -> str:
    """The group JID (`<id>@g.us`) of a `g:` conversation key."""
    user = key.removeprefix(GROUP_PREFIX)
    if "-" in user and not user.replace("-", "").isdigit():
        user = "-".join(str(int(part, 36)) for part in user.split("-"))
    return f"{user}@g.us"


def is_group_customer(phone: str) -> bool:
    return phone.startswith(GROUP_PREFIX)


def _to_b36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if not n:
            return out


def parse_customer(text: str, default_region: str | None = None) -> str:
    """A customer key typed by the owner (CLI, console): a phone number, or a key wabot
    shows for customers without one (`lid:<digits>`, `g:<group>`)."""
    raw = text.strip()
    if raw.lower().startswith(LID_PREFIX) and raw[len(LID_PREFIX):].isdigit():
        return LID_PREFIX + raw[len(LID_PREFIX):]
    if raw.lower().startswith(GROUP_PREFIX) and len(raw) > len(GROUP_PREFIX):
        return GROUP_PREFIX + raw[len(GROUP_PREFIX):]
    return parse_typed(text, default_region)


def parse_typed(text: str, default_region: str | None = None) -> str:
    """E.164 for a number a person typed (`+52 1 55 1234 5678`, `(555) 010-9999`).

    Digits written with a leading `+` (or `00`) are taken as international and kept as
    given, so a number copied from WhatsApp maps to the same customer WhatsApp delivers.
    A national number needs `default_region` and must be valid there.
    """
    raw = text.strip()
    digits = "".join(_DIGITS.findall(raw))
    if raw.startswith("00"):
        raw, digits = "+" + raw[2:], digits[2:]
    if raw.startswith("+"):
        if not 6 <= len(digits) <= 15:
            raise PhoneError(f"{text!r} is not a phone number: E.164 has 6 to 15 digits")
        return "+" + digits
    if default_region is None:
        raise PhoneError(f"{text!r} has no country code: write it as +<country><number>")
    try:
        parsed = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise PhoneError(f"{text!r} is not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise PhoneError(f"{text!r} is not a valid number for region {default_region}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def parse_setting(text: str) -> str:
    """E.164 for a number written in the settings, refused when no customer can ever have it.

    Stricter than `parse_typed`: the number must have a possible length for its country
    (libphonenumber; not its ranges, which lag behind new numbers), or be one of
    the legacy forms WhatsApp still delivers (Mexico `+521` + 10 digits, Argentina `+549` +
    10 digits), so an access list or owner number with a digit missing fails at start.
    """
    e164 = parse_typed(text)
    if _valid(e164) or any(e164.startswith(p) and len(e164) == len(p) + 10 and _valid(
            e164[:len(p) - 1] + e164[len(p):]) for p in _LEGACY_MOBILE):
        return e164
    raise PhoneError(f"{text!r} is not a valid phone number ({e164}): write it in full as "
                     "+<country><number>, as WhatsApp shows it (e.g. +5215512345678)")


_LEGACY_MOBILE = ("+521", "+549")  # WhatsApp ids keep the old mobile prefix


def _valid(e164: str) -> bool:
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return False


def mask(phone: str) -> str:
    """`+5215512345678` → `+52155****5678`: enough to tell customers apart in logs."""
    if len(phone) <= 8:
        return phone[:2] + "****"
    return phone[:6] + "****" + phone[-4:]
