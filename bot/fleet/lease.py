"""One lease per number, in the shared database: the owner node, an expiry on the database's
clock, and an epoch (a fencing token) that grows at every acquisition.

A node renews its leases every few seconds. Locally a lease is good for two thirds of its
length after the start of the last renewal that succeeded (`Lease.check`), on the process's
monotonic clock: a node that cannot renew, or that was frozen (SIGSTOP, a VM paused), stops
sending well before the database could hand the number to another node, and never sends
again under that epoch. Writes that must not come from a stale owner check the epoch in the
database inside their own transaction (`bot.stores.turn_writer.FENCE`).
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.fleet.tables import LeaseRow, NodeRow
from bot.gateway.base import NotOwner
from bot.stores.db import Database

VALID_SHARE = 2 / 3  # of the lease's length, after the start of the last renewal


class StaleLease(NotOwner):
    """This node no longer owns the number (or cannot know that it does): do not send."""


def new_node_id(configured: str = "") -> str:
    """The node's name in the fleet: as configured, else the host plus a suffix per start,
    so two processes on one host are two nodes, never one."""
    if configured:
        return configured
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(2).hex()}"


@dataclass(slots=True)
class Lease:
    """A number this node holds: under `epoch` until `valid_until` (monotonic seconds)."""

    number: str
    epoch: int
    valid_until: float
    lost: bool = field(default=False)

    def check(self) -> None:
        """Raise `StaleLease` unless this node may still act for the number."""
        if self.lost:
            raise StaleLease(f"number {self.number}: the lease (epoch {self.epoch}) was lost")
        if time.monotonic() >= self.valid_until:
            raise StaleLease(f"number {self.number}: the lease (epoch {self.epoch}) was not "
                             "renewed in time")

    @property
    def valid(self) -> bool:
        return not self.lost and time.monotonic() < self.valid_until


def gone_from_this_host(node: NodeRow) -> bool:
    """A node that ran on this host and whose process no longer exists."""
    if node.host != socket.gethostname() or node.pid <= 0 or node.pid == os.getpid():
        return False
    try:
        os.kill(node.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: alive
        return False
    return False


def _now_sql(db: Database) -> str:
    if db.is_sqlite:
        return "((julianday('now') - 2440587.5) * 86400.0)"
    return "extract(epoch from clock_timestamp())"


@dataclass(slots=True)
class NodeState:
    """What every lease of this process shares: whether the node is handing over."""

    draining: bool = False
    beat_at: float = -1e9  # monotonic: the node row's last write, by any of its leases
    console_url: str = ""  # where other nodes forward sends, once a lease has said it


class Leases:
    """The lease and node rows, for one node (`node`), with leases `ttl` seconds long."""

    def __init__(self, db: Database, node: str, ttl: float,
                 state: NodeState | None = None) -> None:
        self.db = db
        self.node = node
        self.ttl = ttl
        self.state = state or NodeState()
        now = _now_sql(db)
        self._acquire = text(
            f"UPDATE number_leases SET owner = :me, epoch = epoch + 1, expires_at = {now} + :ttl"
            f" WHERE number = :n AND (owner IS NULL OR expires_at < {now}) RETURNING epoch")
        self._take = text(
            f"UPDATE number_leases SET owner = :me, epoch = epoch + 1, expires_at = {now} + :ttl"
            " WHERE number = :n AND owner = :dead RETURNING epoch")
        self._renew = text(
            f"UPDATE number_leases SET expires_at = {now} + :ttl"
            " WHERE number = :n AND owner = :me AND epoch = :e")
        self._release = text(
            f"UPDATE number_leases SET owner = NULL, expires_at = {now}"
            " WHERE number = :n AND owner = :me AND epoch = :e")
        self._ensure = text(
            "INSERT INTO number_leases (number, owner, epoch, expires_at)"
            " VALUES (:n, NULL, 0, 0) ON CONFLICT (number) DO NOTHING")
        self._beat = text(
            "INSERT INTO fleet_nodes (node, host, pid, started_at, seen_at, draining, console_url)"
            f" VALUES (:me, :host, :pid, {now}, {now}, :draining, :url)"
            f" ON CONFLICT (node) DO UPDATE SET seen_at = {now}, draining = :draining,"
            # A claim that does not know the console's address keeps the one another
            # claim of the node published.
            " console_url = CASE WHEN :url = '' THEN fleet_nodes.console_url ELSE :url END,"
            " host = :host, pid = :pid")
        # On PostgreSQL a turn's write holds the lease row FOR KEY SHARE until its commit
        # (`bot.stores.turn_writer`), which a renewal (expires_at only) does not wait for: a
        # stream of overlapping turns never holds the renewal back. A change of owner must
        # wait for those writes, so it first locks the row FOR UPDATE.
        self._hold = None if db.is_sqlite else text(
            "SELECT 1 FROM number_leases WHERE number = :n FOR UPDATE")
        self._now = text(f"SELECT {now}")
        # (numbers, held by this node, live nodes): what a fair share is computed from.
        self._counts = text(
            "SELECT (SELECT count(*) FROM number_leases),"
            f" (SELECT count(*) FROM number_leases WHERE owner = :me AND expires_at > {now}),"
            f" (SELECT count(*) FROM fleet_nodes WHERE seen_at > {now} - :ttl"
            " AND NOT draining)")

    def lease_for(self, number: str, epoch: int, started: float) -> Lease:
        return Lease(number, epoch, started + self.ttl * VALID_SHARE)

    async def now(self) -> float:
        async with self.db.connect() as conn:
            return float((await conn.execute(self._now)).scalar_one())

    async def over_share(self) -> int:
        """How many numbers this node holds beyond its fair share (≈ numbers ÷ live nodes,
        rounded up); negative: how many more it may take."""
        async with self.db.connect() as conn:
            numbers, held, live = (await conn.execute(
                self._counts, {"me": self.node, "ttl": self.ttl})).one()
        return int(held) - math.ceil(int(numbers) / max(1, int(live)))

    async def ensure(self, numbers: Iterable[str]) -> None:
        """A lease row (free) for every number that has none."""
        rows = [{"n": n} for n in numbers]
        if rows:
            async with self.db.begin() as conn:
                await conn.execute(self._ensure, rows)

    async def _change_of_owner(self, conn: AsyncConnection, number: str) -> None:
        """Wait for the turn writes that hold the number's lease row (PostgreSQL)."""
        if self._hold is not None:
            await conn.execute(self._hold, {"n": number})

    async def acquire(self, number: str) -> Lease | None:
        """Take the number when it is free or its lease expired; None when another holds it."""
        started = time.monotonic()
        async with self.db.begin() as conn:
            await self._change_of_owner(conn, number)
            epoch = (await conn.execute(self._acquire, {
                "me": self.node, "ttl": self.ttl, "n": number})).scalar()
        return None if epoch is None else self.lease_for(number, int(epoch), started)

    async def take_from(self, number: str, dead: str) -> Lease | None:
        """Take the number from node `dead`, known to be gone (its process on this host no
        longer exists): no need to wait for its lease to lapse."""
        started = time.monotonic()
        async with self.db.begin() as conn:
            await self._change_of_owner(conn, number)
            epoch = (await conn.execute(self._take, {
                "me": self.node, "ttl": self.ttl, "n": number, "dead": dead})).scalar()
        return None if epoch is None else self.lease_for(number, int(epoch), started)

    async def renew(self, lease: Lease) -> bool:
        """Extend the lease; False (and the lease marked lost) when another node took it."""
        started = time.monotonic()
        async with self.db.begin() as conn:
            done = (await conn.execute(self._renew, {
                "me": self.node, "ttl": self.ttl, "n": lease.number, "e": lease.epoch})).rowcount
        if done:
            lease.valid_until = max(lease.valid_until, started + self.ttl * VALID_SHARE)
        else:
            lease.lost = True
        return bool(done)

    async def release(self, lease: Lease) -> None:
        """Give the number back at once (drain, rebalancing)."""
        lease.lost = True
        async with self.db.begin() as conn:
            await self._change_of_owner(conn, lease.number)
            await conn.execute(self._release, {"me": self.node, "n": lease.number,
                                               "e": lease.epoch})

    # --- the table as a whole ----------------------------------------------------------

    async def lease(self, number: str) -> LeaseRow | None:
        async with self.db.connect() as conn:
            row = (await conn.execute(text(
                "SELECT number, owner, epoch, expires_at FROM number_leases"
                " WHERE number = :n"), {"n": number})).mappings().first()
        return LeaseRow.model_validate(dict(row)) if row else None

    async def leases(self) -> list[LeaseRow]:
        async with self.db.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT number, owner, epoch, expires_at FROM number_leases"))).mappings()
            return [LeaseRow.model_validate(dict(r)) for r in rows]

    async def beat(self, *, console_url: str = "", force: bool = False) -> None:
        """This node is alive (and whether it is handing its numbers over). One write per
        eighth of a lease whatever the numbers (each renewal asks: a hundred numbers, a
        hundred writes of one row every period otherwise)."""
        if console_url:
            self.state.console_url = console_url
        now = time.monotonic()
        if not force and now - self.state.beat_at < self.ttl / 8:
            return
        self.state.beat_at = now
        async with self.db.begin() as conn:
            await conn.execute(self._beat, {"me": self.node, "host": socket.gethostname(),
                                            "pid": os.getpid(),
                                            "draining": self.state.draining,
                                            "url": self.state.console_url})

    async def drain(self, console_url: str = "") -> None:
        """This node stops: from now on the others count it out of the fair share, so
        they take the numbers it gives back at once, and it takes none."""
        self.state.draining = True
        await self.beat(console_url=console_url, force=True)

    async def nodes(self) -> list[NodeRow]:
        async with self.db.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT node, host, pid, started_at, seen_at, draining, console_url"
                " FROM fleet_nodes"))).mappings()
            return [NodeRow.model_validate(dict(r)) for r in rows]

    async def leave(self) -> None:
        async with self.db.begin() as conn:
            await conn.execute(text("DELETE FROM fleet_nodes WHERE node = :me"),
                               {"me": self.node})
