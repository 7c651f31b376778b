"""Times as the owner reads them on the console's pages: in the business's timezone, with
its abbreviation, exactly as the CLI prints them (`bot.business.local_time`).

Issue #24: the pages showed UTC with no label while the CLI showed local time. The JSON
API keeps ISO 8601 with the offset; only what a person reads goes through here.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from bot.business import local_time
from bot.followups.timing import Span, next_slot
from bot.web.i18n import ENGLISH, Texts


def shown(at: datetime | str | None, zone: tzinfo) -> str:
    """`2026-01-10 06:02 CST` for an aware datetime or its ISO 8601 text; "" for none."""
    if not at:
        return ""
    when = datetime.fromisoformat(at) if isinstance(at, str) else at
    return local_time(when, zone)


def followup(due: datetime, zone: ZoneInfo, hours: dict[int, Span],
             t: Texts = ENGLISH) -> str:
    """When a follow-up due at `due` goes out, as `wabot followups` says it: moved into the
    sending hours (as the scheduler moves it when due), with the due time when it moved;
    the weekday in the page's language."""
    real = next_slot(due, zone, hours, timedelta(0)) or due
    when = f"{t.weekday(real.astimezone(zone))} {local_time(real, zone)}"
    return t("followups.moved", when=when, due=local_time(due, zone)) if real != due else when
