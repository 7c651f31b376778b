"""Adding a number twice at the same moment, from two shells or nodes: one wins, the other is
told the number exists (409), never a database error."""

from __future__ import annotations

import pytest

from bot.clock import SystemClock
from bot.fleet.admin import NewNumber, NumberExists, add_number
from bot.fleet.numbers import NumberStore
from bot.fleet.tables import NumberRow
from bot.stores.db import Database
from tests.fakes.fleet import forget_rows


class Late(NumberStore):
    """Read before the other shell's insert committed: sees no number yet."""

    async def all(self) -> list[NumberRow]:
        return []

    async def get(self, key: str) -> NumberRow | None:
        return None


async def test_a_number_added_meanwhile_is_reported_as_existing(settings):
    db = Database(settings.sql_url)
    try:
        await db.create_all()
        key = f"{settings.tenant}-race"
        await add_number(NumberStore(db, SystemClock()), NewNumber(key=key), settings)
        with pytest.raises(NumberExists, match="already exists"):
            await add_number(Late(db, SystemClock()), NewNumber(key=key), settings)
    finally:
        await db.close()
        await forget_rows(settings.sql_url, settings.tenant)
