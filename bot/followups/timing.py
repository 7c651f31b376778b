"""Follow-up time: reading "in 3 days" as the model writes it, and the sending hours."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.business import Business
from bot.pipeline.optout import plain

SLOT_SEARCH_DAYS = 14  # no sending hours in two weeks: the follow-up is dropped

_UNITS = {"minute": 60, "min": 60, "minuto": 60, "hour": 3600, "hora": 3600, "h": 3600,
          "day": 86400, "dia": 86400, "week": 7 * 86400, "semana": 7 * 86400,
          "month": 30 * 86400, "mes": 30 * 86400}
_COUNTS = {"a": 1, "an": 1, "one": 1, "un": 1, "una": 1, "uno": 1, "two": 2, "dos": 2,
           "three": 3, "tres": 3, "couple": 2, "few": 3}
_NAMED = {"tomorrow": 1, "manana": 1, "day after tomorrow": 2, "pasado manana": 2,
          "next week": 7, "la proxima semana": 7, "la semana que viene": 7}
_RELATIVE = re.compile(r"^(?:in|en|within|dentro de)\s+(?:a\s+)?(\S+)\s+(?:of\s+)?([a-z]+)$")


def _unit_seconds(word: str) -> int | None:
    for candidate in (word, word.removesuffix("s"), word.removesuffix("es")):
        if candidate in _UNITS:
            return _UNITS[candidate]
    return None


def parse_when(text: str, now: datetime, tz: ZoneInfo) -> datetime:
    """A follow-up time the model wrote: relative ('in 3 days', 'en 2 horas', 'tomorrow')
    or a local date/time ('2026-03-14 10:00', a bare date means 10:00). Aware UTC."""
    raw = text.strip()
    words = plain(raw)
    if words in _NAMED:
        return now + timedelta(days=_NAMED[words])
    if m := _RELATIVE.match(words):
        count = int(m[1]) if m[1].isdigit() else _COUNTS.get(m[1])
        unit = _unit_seconds(m[2])
        if count is not None and unit is not None:
            return now + timedelta(seconds=count * unit)
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"cannot read the time {text!r}: write 'in 3 days', 'in 2 hours', "
                         "'tomorrow' or a local date and time like 2026-03-14 10:00") from None
    if re.fullmatch(r"\d{4}-\d\d-\d\d", raw):
        parsed = parsed.replace(hour=10)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


Span = tuple[time, time]


def next_slot(at: datetime, tz: ZoneInfo, span_of: dict[int, Span], spread: timedelta,
              ) -> datetime | None:
    """`at` itself when it is inside its local day's sending hours, else the next opening
    plus `spread` (kept inside that day's hours); None when nothing opens in two weeks."""
    local = at.astimezone(tz)
    for offset in range(SLOT_SEARCH_DAYS + 1):
        day = local.date() + timedelta(days=offset)
        span = span_of.get(day.weekday())
        if span is None:
            continue
        start = datetime.combine(day, span[0], tzinfo=tz)
        end = datetime.combine(day, span[1], tzinfo=tz)
        if start <= local < end:
            return at
        if local < start:
            return (start + min(spread, (end - start) / 2)).astimezone(UTC)
    return None


def _span(text: str) -> Span:
    start, end = (time.fromisoformat(p) for p in text.split("-"))
    return start, end


def sending_hours(business: Business, fallback: str) -> dict[int, Span]:
    """The business's opening hours per weekday; `fallback` every day when it states none."""
    if not business.hours:
        return dict.fromkeys(range(7), _span(fallback))
    return {d: span for d in range(7) if (span := business.open_span(d)) is not None}
