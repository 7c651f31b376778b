"""The customer tables: one row per customer, the inbound journal, usage per day.

`bot.stores.customers.CustomerStore` reads and writes them; other stores join on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import Index, Table, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.models import MessageKind, Stage
from bot.stores.db import UTCDateTime


class Customer(SQLModel, table=True):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("tenant", "phone"),
        Index("ix_customers_lid", "tenant", "lid"),
        Index("ix_customers_recent", "tenant", "last_contact"),  # the console's list
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(max_length=64)
    phone: str = Field(max_length=20)
    wa_jid: str = ""
    lid: str = ""
    name: str = ""
    stage: str = Stage.LEAD.value
    opted_out: bool = False
    paused_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    first_contact: datetime = Field(sa_type=UTCDateTime)
    last_contact: datetime = Field(sa_type=UTCDateTime)
    last_inbound: datetime | None = Field(default=None, sa_type=UTCDateTime)
    msgs_in: int = 0
    msgs_out: int = 0
    tokens_in: int = 0
    tokens_out: int = 0


class JournalEntry(SQLModel, table=True):
    """Every inbound message, written before it is processed: nothing is lost."""

    __tablename__ = "journal"
    __table_args__ = (
        UniqueConstraint("tenant", "msg_id"),
        Index("ix_journal_status", "tenant", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(max_length=64)
    # No length: ids are the sender's to choose (WhatsApp's are ~20-32 characters, a
    # tampered client's any length); a longer one must not lose the message.
    msg_id: str
    phone: str = Field(max_length=20)
    chat: str = ""
    lid: str = ""
    push_name: str = ""
    kind: str = MessageKind.TEXT.value
    text: str = ""
    from_owner: bool = False
    received_at: datetime = Field(sa_type=UTCDateTime)
    status: str = "received"  # received → answered | ignored | failed


class UsageDay(SQLModel, table=True):
    """What one customer cost on one UTC day: the daily token cap and `wabot status`."""

    __tablename__ = "usage_daily"
    __table_args__ = (UniqueConstraint("tenant", "day", "phone"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(max_length=64)
    day: str = Field(max_length=10)  # YYYY-MM-DD, UTC
    phone: str = Field(max_length=20)
    msgs_out: int = 0
    tokens_in: int = 0
    tokens_out: int = 0


CUSTOMERS = cast(Table, Customer.__table__)  # type: ignore[attr-defined]


def customer_of(row: Mapping[Any, Any]) -> Customer:
    """A stored customer row as a `Customer`, also one no entry accepts any more (a 41-
    character phone an older version stored, issue #24.9): lists show it marked
    (`bot.phones.customer_key_error`) instead of failing on it."""
    try:
        return Customer.model_validate(dict(row))
    except ValidationError:
        return Customer.model_construct(**dict(row))
JOURNAL = cast(Table, JournalEntry.__table__)  # type: ignore[attr-defined]
USAGE = cast(Table, UsageDay.__table__)  # type: ignore[attr-defined]
