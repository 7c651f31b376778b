"""The customer an owner means when they type a number on the command line.

The owner types `+52 55 1234 5678` (as the number is dialled today) while WhatsApp delivers
that person as `+5215512345678`: parsing alone made a second, empty customer, so `pause`
paused nobody and `forget` forgot nothing. Every admin command goes through
`customer_key`, which finds the existing customer among the forms one WhatsApp id can take.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from bot.cli.common import fail
from bot.models import CustomerKey
from bot.phones import PhoneError, customer_key_error, mask, parse_customer, whatsapp_forms
from bot.settings import Settings

EXIT_BAD_INPUT = 2


def typed_phone(text: str) -> str:
    """E.164 for a typed number, or exit 2 with the reason (`+0000000`, `x12`, `٥٥…`)."""
    try:
        return parse_customer(text)  # or a `lid:<digits>` / `g:<group>` key
    except PhoneError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None


def customer_key(settings: Settings, text: str) -> CustomerKey:
    """The key of the existing customer `text` means, else of the number as typed. A key
    no WhatsApp number has is refused, unless it is stored as it is (a row from before
    issue #24.9, shown marked by `wabot customers`): that one can be exported and forgotten."""
    try:
        phone = parse_customer(text)
    except PhoneError as exc:
        raw = text.strip()
        stored = _existing(settings, list(dict.fromkeys([raw, "+" + raw.lstrip("+")])))
        if not stored:
            raise fail(str(exc), EXIT_BAD_INPUT) from None
        typer.echo(f"note: {mask(stored[0])} is stored, but is no WhatsApp number "
                   f"({customer_key_error(stored[0])})", err=True)
        return CustomerKey(settings.tenant, stored[0])
    if not phone.startswith("+"):  # a key wabot showed: nothing else it could be
        return CustomerKey(settings.tenant, phone)
    forms = whatsapp_forms(phone)
    found = _existing(settings, forms) if len(forms) > 1 else []
    if not found or phone in found:
        return CustomerKey(settings.tenant, phone)
    chosen = next(f for f in forms if f in found)  # forms are ordered, most likely first
    typer.echo(f"note: {phone} is the customer WhatsApp knows as {chosen}", err=True)
    return CustomerKey(settings.tenant, chosen)


def _existing(settings: Settings, forms: list[str]) -> list[str]:
    """Which of `forms` are customers of this tenant. Nothing when the database is not there
    yet or cannot be read: the command itself then opens it and says what is wrong."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    url = settings.sql_url
    if url.startswith("sqlite"):
        path = make_url(url).database
        if not path or not Path(path).exists():  # no file: no customers, and make none
            return []
    try:
        return asyncio.run(_select(url, settings.tenant, forms))
    except (SQLAlchemyError, OSError):
        return []


async def _select(url: str, tenant: str, forms: list[str]) -> list[str]:
    from sqlmodel import col, select

    from bot.stores.customers import Customer
    from bot.stores.db import Database

    db = Database(url)
    try:
        async with db.connect() as conn:
            rows = await conn.execute(select(Customer.phone).where(
                Customer.tenant == tenant, col(Customer.phone).in_(forms)))
            return [str(r[0]) for r in rows]
    finally:
        await db.close()
