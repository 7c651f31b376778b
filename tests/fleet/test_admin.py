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


async def test_nodes_starting_at_once_each_register_the_configured_number(settings):
    """Every node of a new fleet registers its configured number at its first start: the
    one that lost the race is told it was there, never stopped with "already exists" (a
    third node failed to start so)."""
    db = Database(settings.sql_url)
    try:
        await db.create_all()
        assert await NumberStore(db, SystemClock()).register(settings) is True
        assert await Late(db, SystemClock()).register(settings) is False
        assert [row.key for row in await NumberStore(db, SystemClock()).all()
                if row.key == settings.tenant] == [settings.tenant]
    finally:
        await db.close()
        await forget_rows(settings.sql_url, settings.tenant)
