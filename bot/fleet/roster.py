"""Who serves which number, as the operator reads it: `wabot numbers list | show`,
`GET /api/v1/numbers` and the fleet part of `wabot status`.

Read only. Lease expiries and node heartbeats are compared with the database's clock
(`Leases.now`), as the nodes compare them, never with this machine's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import inspect

from bot.fleet.lease import Leases
from bot.fleet.numbers import SECRETS
from bot.fleet.tables import NodeRow, NumberRow
from bot.stores.db import Database

EXPIRING_SOON = 10.0  # seconds: a lease this close to lapsing is worth a look
TABLES = ("numbers", "number_leases", "fleet_nodes")


@dataclass(slots=True, frozen=True)
class Entry:
    """One number and its lease: `owner` holds it while `expires_in` > 0."""

    row: NumberRow
    owner: str | None = None
    epoch: int = 0
    expires_in: float | None = None  # seconds left on the lease (< 0: lapsed); None: no lease
    node: NodeRow | None = None  # the owner's node row, while it has one

    @property
    def held(self) -> bool:
        return self.owner is not None and (self.expires_in or 0) > 0


@dataclass(slots=True, frozen=True)
class Roster:
    now: float  # the database's clock, seconds since the epoch
    entries: list[Entry]
    nodes: list[NodeRow]

    def get(self, key: str) -> Entry | None:
        return next((e for e in self.entries if e.row.key == key), None)

    def alive(self, lease_seconds: float) -> list[NodeRow]:
        """Nodes seen within a lease's length: a node gone longer has lost its numbers."""
        return [n for n in self.nodes if n.seen_at > self.now - lease_seconds]

    def expiring(self, within: float = EXPIRING_SOON) -> list[Entry]:
        """Held leases that lapse within `within` seconds: a node that stopped renewing."""
        return [e for e in self.entries
                if e.held and e.expires_in is not None and e.expires_in <= within]


async def has_fleet_tables(db: Database) -> bool:
    async with db.connect() as conn:
        names = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    return all(t in names for t in TABLES)


async def read_roster(db: Database, rows: list[NumberRow]) -> Roster:
    """The numbers `rows` with their leases and owners, and every node of the fleet."""
    leases = Leases(db, node="cli", ttl=0)  # only reads: never beats, never acquires
    now = await leases.now()
    by_number = {lease.number: lease for lease in await leases.leases()}
    nodes = sorted(await leases.nodes(), key=lambda n: n.node)
    by_node = {n.node: n for n in nodes}
    entries = []
    for row in rows:
        lease = by_number.get(row.key)
        if lease is None or lease.owner is None:
            entries.append(Entry(row, epoch=lease.epoch if lease else 0))
            continue
        entries.append(Entry(row, lease.owner, lease.epoch, lease.expires_at - now,
                             by_node.get(lease.owner)))
    return Roster(now, entries, nodes)


def public_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A number's settings to show: secrets are stored only as environment variable names,
    and a value that got there by another way is shown as `***`, never as itself."""
    out: dict[str, Any] = {}
    for section, values in settings.items():
        if isinstance(values, dict):
            out[section] = {name: "***" if name in SECRETS.get(section, ()) else value
                            for name, value in values.items()}
        else:
            out[section] = values
    return out


def lease_text(entry: Entry) -> str:
    if entry.expires_in is None:
        return "free"
    if entry.expires_in > 0:
        return f"{entry.expires_in:.0f} s"
    return f"lapsed {-entry.expires_in:.0f} s ago"


def entry_json(entry: Entry) -> dict[str, Any]:
    row = entry.row
    node = entry.node
    return {
        "key": row.key, "transport": row.transport, "state": row.state,
        "state_line": row.state_line, "settings": public_settings(row.settings or {}),
        "business_file": row.business_file or None,
        "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
        "owner": entry.owner, "held": entry.held, "epoch": entry.epoch,
        "lease_expires_in": None if entry.expires_in is None else round(entry.expires_in, 1),
        "owner_console": node.console_url or None if node and entry.held else None,
    }
