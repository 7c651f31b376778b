"""The fleet's tables: the numbers a deployment serves, who holds each, which nodes live,
and the customers one node changed for another.

Times that decide ownership (`expires_at`, `seen_at`) are the database's own clock in
seconds since the epoch, so nodes whose clocks disagree still agree on who owns what.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Column, Table
from sqlmodel import Field, SQLModel

from bot.stores.db import UTCDateTime

NUMBER_KEY = r"^[A-Za-z0-9_.+-]{1,64}$"  # the tenant of every customer row of the number


class NumberRow(SQLModel, table=True):
    """One WhatsApp number the deployment serves. `settings` holds what differs from the
    process's settings for it, as the TOML sections would (`{"cloud": {...}}`); secrets
    are never stored there, only the name of the environment variable that holds them."""

    __tablename__ = "numbers"

    key: str = Field(primary_key=True, max_length=64)
    transport: str = Field(default="web", max_length=8)  # web | cloud
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    business_file: str = ""  # empty: the process's business profile
    state: str = Field(default="linking", max_length=16)
    state_line: str = ""  # the transport's last status line, for the fleet page
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class LeaseRow(SQLModel, table=True):
    """Who may serve a number: `owner` until `expires_at`. `epoch` grows at every
    acquisition, so a write or send stamped with an older epoch is known to be stale."""

    __tablename__ = "number_leases"

    number: str = Field(primary_key=True, max_length=64)
    owner: str | None = Field(default=None, max_length=128)
    epoch: int = 0
    expires_at: float = 0.0


class NodeRow(SQLModel, table=True):
    """One `wabot run` process of the fleet, alive while `seen_at` is recent."""

    __tablename__ = "fleet_nodes"

    node: str = Field(primary_key=True, max_length=128)
    host: str = ""
    pid: int = 0
    started_at: float = 0.0
    seen_at: float = 0.0
    draining: bool = False
    console_url: str = ""


class ChangeRow(SQLModel, table=True):
    """A customer changed by a node that may not serve its number (a pause from its
    console): the serving node drops what it cached of them (`bot.fleet.changes`)."""

    __tablename__ = "customer_changes"

    seq: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(max_length=64)
    phone: str = Field(max_length=64)
    at: datetime = Field(sa_type=UTCDateTime)


NUMBERS = cast(Table, NumberRow.__table__)  # type: ignore[attr-defined]
LEASES = cast(Table, LeaseRow.__table__)  # type: ignore[attr-defined]
NODES = cast(Table, NodeRow.__table__)  # type: ignore[attr-defined]
CHANGES = cast(Table, ChangeRow.__table__)  # type: ignore[attr-defined]
