"""Database errors printed the statement's parameters (a customer's text, name, card
number) into the log. Engines now hide them."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from bot.stores.db import Database

SECRET = "my card is 4111 1111 1111 1111"


async def test_a_failing_statement_does_not_show_its_parameters(db_url):
    db = Database(db_url)
    try:
        with pytest.raises(SQLAlchemyError) as caught:
            async with db.begin() as conn:
                await conn.execute(text("SELECT * FROM no_such_table_wabot WHERE x = :v"),
                                   {"v": SECRET})
        assert SECRET not in str(caught.value)
        assert "hidden due to hide_parameters" in str(caught.value)
    finally:
        await db.close()


@pytest.mark.parametrize("typed", ["+52 55 1234 5678", "4111 1111 1111 1111", "55 1234 5678"])
def test_digit_runs_broken_by_spaces_are_masked(typed):
    from bot.ops.logs import mask_text

    masked = mask_text(f"customer wrote: {typed} thanks")
    assert typed not in masked
    assert "1234 5678" not in masked and "1111 1111" not in masked
    assert mask_text(masked) == masked  # idempotent
