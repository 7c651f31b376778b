"""The business part of the system prompt is made once a minute, not once a turn, and is
never older than the minute it says, nor than the catalog."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.agents.prompt import BusinessBlocks, business_block
from bot.business import Business, Product

AT = datetime(2026, 1, 5, 15, 0, 10, tzinfo=UTC)


def _shop() -> Business:
    return Business(name="Zapatería Ana", timezone="America/Mexico_City",
                    products=[Product(name="Botín azul", price=899, currency="MXN")])


def test_one_block_a_minute_with_the_minute_it_says():
    shop, blocks = _shop(), BusinessBlocks()
    first = blocks(shop, AT)
    assert first == business_block(shop, AT) and "09:00" in first  # 15:00 UTC in CDMX
    assert blocks(shop, AT + timedelta(seconds=45)) is first  # same minute: made once
    later = blocks(shop, AT + timedelta(seconds=50))
    assert "09:01" in later and later == business_block(shop, AT + timedelta(seconds=50))


def test_a_new_catalog_or_budget_makes_a_new_block():
    shop, blocks = _shop(), BusinessBlocks()
    assert "Botín azul" in blocks(shop, AT)
    restocked = shop.model_copy(update={"products": [Product(name="Sandalia", price=450,
                                                             currency="MXN")]})
    text = blocks(restocked, AT)
    assert "Sandalia" in text and "Botín azul" not in text
    assert blocks(restocked, AT, 1) == business_block(restocked, AT, 1)
