"""Opening hours as an owner types them, in the business's language → the profile's `hours`.

`lun-sab 07:00-20:00, dom 08:00-14:00` from a Spanish bakery reads as well as
`mon-sat 07:00-20:00, sun 08:00-14:00`: day names (or any unambiguous start of one, accents
optional) in the business's language or in English, a range with `-` (or `a`, `to`, …),
hours as H:MM-H:MM, or "closed" in either language. Days not named are closed.
"""

from __future__ import annotations

import re

from bot.business import DAYS
from bot.ops.zones import plain

# Day names by language, Monday first; the first word of each is how it is shown.
_NAMES: dict[str, tuple[str, ...]] = {
    "en": ("mon monday", "tue tuesday", "wed wednesday", "thu thursday", "fri friday",
           "sat saturday", "sun sunday"),
    "es": ("lun lunes", "mar martes", "mié miercoles", "jue jueves", "vie viernes",
           "sáb sabado", "dom domingo"),
    "pt": ("seg segunda", "ter terca", "qua quarta", "qui quinta", "sex sexta",
           "sáb sabado", "dom domingo"),
    "fr": ("lun lundi", "mar mardi", "mer mercredi", "jeu jeudi", "ven vendredi",
           "sam samedi", "dim dimanche"),
    "de": ("mo montag", "di dienstag", "mi mittwoch", "do donnerstag", "fr freitag",
           "sa samstag", "so sonntag"),
    "it": ("lun lunedi", "mar martedi", "mer mercoledi", "gio giovedi", "ven venerdi",
           "sab sabato", "dom domenica"),
}
_LANGUAGES = {"en": "english ingles", "es": "spanish espanol castellano",
              "pt": "portuguese portugues", "fr": "french francais frances",
              "de": "german deutsch aleman", "it": "italian italiano"}
_CLOSED = {"closed", "cerrado", "fechado", "ferme", "geschlossen", "chiuso"}
_RANGE = re.compile(r"\s*(?:-|–|\bto\b|\ba\b|\bal\b|\bbis\b|\bthrough\b)\s*")
_PART = re.compile(r"^(?P<days>.+?)\s+(?P<span>\S+|\d{1,2}:\d\d\s*-\s*\d{1,2}:\d\d)$")
_SPAN = re.compile(r"^(\d{1,2}):(\d\d)\s*-\s*(\d{1,2}):(\d\d)$")


class HoursError(ValueError):
    """Opening hours that cannot be read; the message says how to write them."""


def day_language(language: str) -> str:
    """`Spanish`, `español`, `es-MX` → es; a language without day names here → en."""
    words = plain(language).replace("(", " ").split()
    for code, names in _LANGUAGES.items():
        if words and (words[0] == code or any(w in names.split() for w in words)):
            return code
    return "en"


def parse_hours(text: str, language: str = "English") -> dict[str, str]:
    """`"lun-sab 07:00-20:00, dom 08:00-14:00"` → {mon: 07:00-20:00, …, sun: 08:00-14:00}."""
    code = day_language(language)
    example = _example(code)
    hours = dict.fromkeys(DAYS, "closed")
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        found = _PART.match(part)
        span = _span(found["span"]) if found else None
        if found is None or span is None:
            raise HoursError(f"{part!r}: write days and hours like {example!r}")
        ends = _RANGE.split(found["days"].strip(), maxsplit=1)
        first, last = (_day(d, code) for d in (ends[0], ends[-1]))
        if last < first:
            raise HoursError(f"{part!r}: a range of days goes from the first to the last "
                             f"of the week, like {example.split()[0]!r}")
        for i in range(first, last + 1):
            hours[DAYS[i]] = span
    return hours


def _span(text: str) -> str | None:
    """`7:00-20:00` → 07:00-20:00; "cerrado" → closed; None when it is neither."""
    if plain(text) in _CLOSED:
        return "closed"
    times = _SPAN.match(text.strip())
    if times is None:
        return None
    h1, m1, h2, m2 = (int(g) for g in times.groups())
    if max(h1, h2) > 23 or max(m1, m2) > 59:
        return None
    return f"{h1:02}:{m1:02}-{h2:02}:{m2:02}"


def _day(typed: str, code: str) -> int:
    """The weekday (0 = Monday) a word names in the business's language or in English."""
    word = plain(typed).rstrip(".")
    matches = {i for lang in {code, "en"} for i, names in enumerate(_NAMES[lang])
               for name in map(plain, names.split())
               if word == name or (len(word) >= 2 and name.startswith(word))}
    if len(matches) != 1:
        shown = ", ".join(n.split()[0] for n in _NAMES[code])
        first, last = _NAMES[code][0].split()[0], _NAMES[code][4].split()[0]
        raise HoursError(f"unknown day {typed.strip()!r}: days are {shown} "
                         f"(or a range: {first}-{last})")
    return matches.pop()


def _example(code: str) -> str:
    names = [n.split()[0] for n in _NAMES[code]]
    return f"{names[0]}-{names[4]} 09:00-18:00, {names[5]} 10:00-14:00"
