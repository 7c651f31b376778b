"""Customer identity: phone numbers in E.164, tolerant of what WhatsApp really delivers."""

from __future__ import annotations

import re

import phonenumbers

_DIGITS = re.compile(r"\d+")


class PhoneError(ValueError):
    """A typed number that cannot be a phone number."""


KEY_CHARS = 20  # the customer key columns' size: no valid key is longer


def customer_key_error(key: str) -> str | None:
    """Why `key` can be no customer of wabot's, or None when it can. The one rule for every
    entry (the Cloud API webhook, WhatsApp Web events, the inbox, the API, the CLI) and for
    rows already stored: `+` and 6 to 15 ASCII digits (E.164), a LID key `lid:<digits>`
    (up to 16), or a group key `g:<id>` (`group_customer`), never over 20 characters."""
    if key.startswith("+"):
        digits = key[1:]
        if digits.isascii() and digits.isdigit() and 6 <= len(digits) <= 15:
            return None
        return f"{len(digits)} characters after the +, not 6 to 15 digits"
    if key.startswith(LID_PREFIX):
        digits = key[len(LID_PREFIX):]
        if digits.isascii() and digits.isdigit() and 1 <= len(digits) <= 16:
            return None
        return "a LID that is not 1 to 16 digits"
    if key.startswith(GROUP_PREFIX) and len(key) > len(GROUP_PREFIX):
        rest = key[len(GROUP_PREFIX):]
        if len(key) <= KEY_CHARS and rest.isascii() and re.fullmatch(r"[0-9a-z-]+", rest):
            return None
        return "a group id over 18 characters or with odd characters"
    return "neither +<digits>, lid:<digits> nor g:<group>"


def check_key(key: str) -> str:
    """`key` when it can be a customer's (`customer_key_error`), else PhoneError."""
    problem = customer_key_error(key)
    if problem is not None:
        raise PhoneError(f"{key[:24]!r}{'…' if len(key) > 24 else ''} is not a WhatsApp "
                         f"number: {problem}")
    return key


def from_whatsapp(user: str) -> str:
    """E.164 for the user part of a WhatsApp phone JID (`5215512345678` → `+5215512345678`).

    Never rejects what WhatsApp delivered: legacy forms such as Mexico's `521…` and
    Argentina's `549…` are kept as they are, so one person stays one customer. A user part
    that is not 6 to 15 ASCII digits (`12ab34`, 40 digits) is no phone number WhatsApp
    gives: a tampered event, refused rather than turned into a made-up customer.
    """
    digits = user.split("@", 1)[0].split(":", 1)[0]
    if customer_key_error("+" + digits) is not None:
        raise PhoneError(f"WhatsApp user {mask(digits)!r} ({len(digits)} characters) is not "
                         "6 to 15 digits")
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
        return check_key(LID_PREFIX + raw[len(LID_PREFIX):])
    if raw.lower().startswith(GROUP_PREFIX) and len(raw) > len(GROUP_PREFIX):
        return check_key(GROUP_PREFIX + raw[len(GROUP_PREFIX):])
    return parse_typed(text, default_region)


def parse_typed(text: str, default_region: str | None = None) -> str:
    """E.164 for a number a person typed (`+52 1 55 1234 5678`, `(555) 010-9999`).

    Digits written with a leading `+` (or `00`) are taken as international and kept as
    given, so a number copied from WhatsApp maps to the same customer WhatsApp delivers.
    A national number needs `default_region` and must be valid there.
    """
    raw = text.strip()
    _refuse_odd_characters(text, raw)
    digits = "".join(_DIGITS.findall(raw))
    if raw.startswith("00"):
        raw, digits = "+" + raw[2:], digits[2:]
    if raw.startswith("+"):
        if customer_key_error("+" + digits) is not None:
            raise PhoneError(f"{text!r} is not a phone number: E.164 has 6 to 15 digits")
        if _country_code(digits) is None:
            raise PhoneError(f"{text!r} is not a phone number: no country has the code "
                             f"at the start of +{digits}")
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
_TYPED_OK = frozenset("0123456789+-.()/ ")
_EXTENSION = re.compile(r"(?i)(ext|x|#|;|,)")


def _refuse_odd_characters(text: str, raw: str) -> None:
    """Only ASCII digits and the usual separators: `\\d` also matches Arabic-Indic or
    full-width digits, which would make a key no WhatsApp id ever equals; an extension
    (`x12`, `ext. 3`, `;ext=`) is not part of a WhatsApp number."""
    if _EXTENSION.search(raw):
        raise PhoneError(f"{text!r}: extensions are not part of a WhatsApp number; "
                         "write the number alone")
    if any(ch.isdigit() and not ch.isascii() for ch in raw):
        raise PhoneError(f"{text!r} has digits other than 0-9: type the number with "
                         "the digits 0-9")
    odd = sorted({ch for ch in raw if ch not in _TYPED_OK})
    if odd:
        shown = ", ".join(repr(ch) for ch in odd[:5])
        raise PhoneError(f"{text!r} has characters a phone number does not ({shown}): "
                         "use the digits 0-9, spaces, dashes and a leading +")
    if "+" in raw[1:]:
        raise PhoneError(f"{text!r}: '+' may only start the number")


def _country_code(digits: str) -> int | None:
    """The calling code `digits` starts with, if any country has it (not for `+0000000`)."""
    for size in (1, 2, 3):
        code = int(digits[:size])
        if phonenumbers.region_code_for_country_code(code) != phonenumbers.UNKNOWN_REGION:
            return code
    return None


def whatsapp_forms(e164: str) -> list[str]:
    """`e164` and the other forms the same person's WhatsApp id may have, most likely first.

    WhatsApp ids keep legacy mobile forms (see DESIGN.md, Customer identity): Mexico's
    `+521` + 10 digits for what is dialled today as `+52` + 10, Argentina's `+549` + 10
    for `+54` + 10, and Brazilian ids of older accounts without the mobile `9` that
    numbers gained in 2012-2016 (`+55` + area + 8 digits). Used to find the customer a
    typed number means; never to rewrite what WhatsApp delivered.
    """
    forms = [e164]
    for short, long_ in (("+52", "+521"), ("+54", "+549")):
        rest = e164[len(long_):]
        if e164.startswith(long_) and len(rest) == 10:
            forms.append(short + rest)
        rest = e164[len(short):]
        if e164.startswith(short) and len(rest) == 10 and not e164.startswith(long_):
            forms.append(long_ + rest)
    if e164.startswith("+55"):
        area, local = e164[3:5], e164[5:]
        if len(local) == 9 and local[0] == "9":
            forms.append(f"+55{area}{local[1:]}")
        elif len(local) == 8 and local[0] in "6789":
            forms.append(f"+55{area}9{local}")
    return forms


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
