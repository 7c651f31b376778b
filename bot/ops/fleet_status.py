"""The fleet part of `wabot status`: the nodes alive, who serves which number, the leases
about to lapse. Shown after the number's own status, once the fleet's tables exist.

A node is alive when it beat within a lease's length (`fleet.lease_seconds`): one gone
longer has lost every lease it held. Times are the database's clock, as the nodes use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.clock import SystemClock
from bot.fleet.numbers import NumberStore
from bot.fleet.roster import Entry, Roster, has_fleet_tables, read_roster
from bot.fleet.tables import NodeRow
from bot.stores.db import Database

GONE_SHOWN = 5  # nodes that stopped beating: the most recent few, the rest counted


@dataclass(slots=True, frozen=True)
class FleetStatus:
    roster: Roster
    lease_seconds: float

    @property
    def alive(self) -> list[NodeRow]:
        return self.roster.alive(self.lease_seconds)

    @property
    def gone(self) -> list[NodeRow]:
        alive = {n.node for n in self.alive}
        return sorted((n for n in self.roster.nodes if n.node not in alive),
                      key=lambda n: -n.seen_at)

    def served_by(self, node: str) -> list[Entry]:
        return [e for e in self.roster.entries if e.held and e.owner == node]

    @property
    def unserved(self) -> list[Entry]:
        return [e for e in self.roster.entries if not e.held]


async def read_fleet(db: Database, lease_seconds: float) -> FleetStatus | None:
    """The fleet as the database has it; None while it has no number and no node (before
    any node started, or `wabot numbers add`)."""
    if not await has_fleet_tables(db):
        return None
    rows = await NumberStore(db, SystemClock()).all()
    roster = await read_roster(db, rows)
    return FleetStatus(roster, lease_seconds) if roster.entries or roster.nodes else None


def _seconds(value: float) -> str:
    return f"{max(0.0, value):.0f} s"


def _numbers(entries: list[Entry]) -> str:
    return ", ".join(e.row.key + ("" if e.row.state == "connected" else f" ({e.row.state})")
                     for e in entries) or "no numbers"


def format_fleet(f: FleetStatus) -> list[str]:
    now, entries = f.roster.now, f.roster.entries
    served = len(entries) - len(f.unserved)
    lines = [f"fleet         {len(f.alive)} node(s) alive · {len(entries)} number(s): "
             f"{served} served, {len(f.unserved)} waiting for a node"]
    for node in f.alive:
        draining = " · draining" if node.draining else ""
        lines.append(f"node          {node.node} (pid {node.pid} on {node.host}, seen "
                     f"{_seconds(now - node.seen_at)} ago{draining}): "
                     f"{_numbers(f.served_by(node.node))}")
    gone = f.gone
    if gone:
        shown = ", ".join(f"{n.node} (last seen {_seconds(now - n.seen_at)} ago)"
                          for n in gone[:GONE_SHOWN])
        more = f" and {len(gone) - GONE_SHOWN} more" if len(gone) > GONE_SHOWN else ""
        lines.append(f"gone          {shown}{more}")
    if f.unserved:
        lines.append(f"unserved      {_numbers(f.unserved)}")
    for e in f.roster.expiring():
        lines.append(f"expiring      {e.row.key}: {e.owner}'s lease lapses in "
                     f"{_seconds(e.expires_in or 0)} (epoch {e.epoch}) unless renewed")
    return lines


def fleet_json(f: FleetStatus) -> dict[str, Any]:
    now = f.roster.now
    alive = {n.node for n in f.alive}
    return {
        "nodes": [{"node": n.node, "host": n.host, "pid": n.pid, "alive": n.node in alive,
                   "draining": n.draining, "seen_seconds_ago": round(now - n.seen_at, 1),
                   "numbers": [e.row.key for e in f.served_by(n.node)]}
                  for n in f.roster.nodes],
        "numbers": [{"key": e.row.key, "transport": e.row.transport, "state": e.row.state,
                     "owner": e.owner if e.held else None, "epoch": e.epoch,
                     "lease_expires_in": None if e.expires_in is None
                     else round(e.expires_in, 1)} for e in f.roster.entries],
        "expiring": [e.row.key for e in f.roster.expiring()],
    }
