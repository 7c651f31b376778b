"""`wabot status`: the daemon publishes a heartbeat row, the CLI reads it with today's numbers.

The heartbeat lives in the SQL database (one row per tenant), so `status` works from any
machine that shares a PostgreSQL database with the daemon, and with the embedded SQLite file.
The daemon rewrites its row every `heartbeat_seconds`; "running" means a fresh row that was
not marked stopped. The row also carries the last error the daemon logged (an ERROR
anywhere, or a WARNING from the turn path: a model timeout, a failed download).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, cast

from loguru import logger
from sqlalchemy import Table, and_, func, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel

from bot.business import local_time
from bot.clock import Clock
from bot.gateway.restrictions import FILE_NAME, read
from bot.ops.fleet_status import FleetStatus, fleet_json, format_fleet, read_fleet
from bot.phones import mask
from bot.settings import Settings
from bot.stores.customers import CUSTOMERS, JOURNAL, USAGE, utc_day
from bot.stores.db import Database, UTCDateTime
from bot.stores.usage_lines import LINES, MEMORY, VOICE

STALE_BEATS = 3  # missed heartbeats before the daemon counts as not running
ERROR_CHARS = 300
# Warnings from these modules are turn failures the owner should see in `status`.
TURN_PATH = ("bot.agents", "bot.pipeline.inbox", "bot.llm", "bot.pipeline.media", "bot.pipeline.presenter", "bot.gateway")


class Heartbeat(SQLModel, table=True):
    __tablename__ = "heartbeats"

    tenant: str = Field(primary_key=True, max_length=64)
    pid: int = 0
    host: str = ""
    started_at: datetime = Field(sa_type=UTCDateTime)
    beat_at: datetime = Field(sa_type=UTCDateTime)
    stopped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    connected_as: str = ""
    agents_cached: int = 0
    turns: int = 0
    failures: int = 0
    last_error: str = ""
    last_error_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


HEARTBEATS = cast(Table, Heartbeat.__table__)  # type: ignore[attr-defined]


@dataclass(slots=True)
class Live:
    """What the running daemon reports about itself at each beat."""

    connected_as: str = ""
    agents_cached: int = 0
    turns: int = 0
    failures: int = 0


class Monitor:
    """Writes the heartbeat and remembers the last error the process logged."""

    def __init__(self, db: Database, tenant: str, clock: Clock, interval: float,
                 probe: Callable[[], Live]) -> None:
        self.db = db
        self.tenant = tenant
        self.clock = clock
        self.interval = interval
        self.probe = probe
        self.started_at = clock.now()
        self.last_error = ""
        self.last_error_at: datetime | None = None
        self._sink: int | None = None

    def _capture(self, message: Any) -> None:
        record = message.record
        text = record["message"]
        if record["exception"] is not None and record["exception"].type is not None:
            text += f" ({record['exception'].type.__name__}: {record['exception'].value})"
        self.last_error = text[:ERROR_CHARS]
        self.last_error_at = self.clock.now()

    @staticmethod
    def _wanted(record: Any) -> bool:
        if record["level"].no >= logger.level("ERROR").no:
            return True
        return bool(record["name"] and record["name"].startswith(TURN_PATH))

    async def start(self) -> None:
        self._sink = logger.add(self._capture, level="WARNING", filter=self._wanted,
                                format="{message}", catch=True)
        # No check for another daemon on the number here: `wabot run` holds its lease
        # (`bot.fleet.claim`), so a second one waits instead of answering twice.
        await self.beat()

    async def beat(self, stopped: bool = False) -> None:
        live = self.probe()
        now = self.clock.now()
        values: dict[str, Any] = {
            "pid": os.getpid(), "host": socket.gethostname(), "started_at": self.started_at,
            "beat_at": now, "stopped_at": now if stopped else None,
            "connected_as": live.connected_as, "agents_cached": live.agents_cached,
            "turns": live.turns, "failures": live.failures,
            "last_error": self.last_error, "last_error_at": self.last_error_at,
        }
        insert = sqlite.insert if self.db.is_sqlite else postgresql.insert
        stmt = insert(HEARTBEATS).values(tenant=self.tenant, **values)
        stmt = stmt.on_conflict_do_update(index_elements=["tenant"], set_=values)
        async with self.db.begin() as conn:
            await conn.execute(stmt)

    async def run(self) -> None:
        while True:
            await self.clock.sleep(self.interval)
            try:
                await self.beat()
            except Exception as exc:  # the database may be down for a moment: try again
                logger.debug("heartbeat not written: {}", exc)

    async def stop(self) -> None:
        if self._sink is not None:
            with suppress(ValueError):  # logging was set up again meanwhile (the CLI)
                logger.remove(self._sink)
            self._sink = None
        try:
            await self.beat(stopped=True)
        except Exception as exc:
            logger.warning("could not record the stop in the heartbeat: {}", exc)


async def read_heartbeat(db: Database, tenant: str) -> Heartbeat | None:
    async with db.connect() as conn:
        if not await _has_table(conn, "heartbeats"):
            return None
        row = (await conn.execute(select(HEARTBEATS).where(
            HEARTBEATS.c.tenant == tenant))).mappings().first()
    return Heartbeat.model_validate(dict(row)) if row else None


async def _tables(conn: AsyncConnection) -> set[str]:
    return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def _has_table(conn: AsyncConnection, name: str) -> bool:
    return await conn.run_sync(lambda sync: inspect(sync).has_table(name))


# --- the report ----------------------------------------------------------------------------


@dataclass(slots=True)
class Status:
    tenant: str
    now: datetime
    heartbeat: Heartbeat | None
    running: bool
    messages_in: int = 0
    messages_out: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    followups: int | None = None  # None: no follow-up table for this tenant
    paused: int = 0
    # issue #16: nothing held back forever, and what it costs outside the customers' turns
    at_cap: int = 0  # customers at their daily tokens today
    capped: int = 0  # messages kept until their customer's cap allows
    unanswered: int = 0  # journaled, not answered yet (waiting, held, capped)
    failed_today: int = 0
    to_retry: int = 0  # failed turns young enough to be retried when the model answers
    memory_tokens: int = 0  # background memory work today (in the totals above too)
    voice_minutes: float = 0.0  # transcribed today
    transport: str = "web"  # whatsapp.transport
    number: str = ""  # the Cloud API number (E.164) as Graph gives it, when reachable
    number_note: str = ""  # why it is not known
    number_id: str = ""  # cloud.phone_number_id
    restrictions: list[str] = field(default_factory=list)  # WhatsApp's timelock / ban
    fleet: FleetStatus | None = None  # issue #22: None until the fleet's tables exist


def followup_table(tenant: str) -> str:
    """The tenant's APScheduler job table (bot.followups names it)."""
    try:
        from bot.followups import job_table_name
    except ImportError:  # a build without follow-ups
        return "followup_jobs_" + re.sub(r"[^a-z0-9_]", "_", tenant.lower())
    return job_table_name(tenant)


async def read_status(db: Database, settings: Settings, now: datetime) -> Status:
    tenant = settings.tenant
    beat = await read_heartbeat(db, tenant)
    fresh = timedelta(seconds=STALE_BEATS * settings.heartbeat_seconds)
    running = bool(beat and beat.stopped_at is None and now - beat.beat_at <= fresh)
    status = Status(tenant, now, beat, running)
    # The daemon's state directory (this machine's): where it records WhatsApp's restrictions.
    status.restrictions = [r.line() for r in read(settings.state_dir / FILE_NAME, now)]
    midnight = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), UTC)
    async with db.connect() as conn:
        tables = await _tables(conn)
        if "journal" in tables:
            status.messages_in = int((await conn.execute(
                select(func.count()).select_from(JOURNAL).where(
                    JOURNAL.c.tenant == tenant, JOURNAL.c.received_at >= midnight,
                    JOURNAL.c.from_owner.is_(False)))).scalar_one())
        if "usage_daily" in tables:
            row = (await conn.execute(select(
                func.coalesce(func.sum(USAGE.c.msgs_out), 0),
                func.coalesce(func.sum(USAGE.c.tokens_in), 0),
                func.coalesce(func.sum(USAGE.c.tokens_out), 0)).where(
                    USAGE.c.tenant == tenant, USAGE.c.day == utc_day(now)))).one()
            status.messages_out, status.tokens_in, status.tokens_out = map(int, row)
        if "customers" in tables:
            status.paused = int((await conn.execute(
                select(func.count()).select_from(CUSTOMERS).where(and_(
                    CUSTOMERS.c.tenant == tenant, CUSTOMERS.c.paused_until > now)))).scalar_one())
        if "journal" in tables:
            await _reliability(conn, settings, status, midnight)
        jobs = followup_table(tenant)
        if jobs in tables:
            status.followups = int((await conn.execute(
                text(f'SELECT count(*) FROM "{jobs}"'))).scalar_one())
    if settings.whatsapp.transport == "cloud":
        status.transport, status.number_id = "cloud", settings.cloud.phone_number_id
        from bot.gateway.cloud.graph import display_number

        status.number, status.number_note = await display_number(settings.cloud)
    status.fleet = await read_fleet(db, settings.fleet.lease_seconds)
    price = settings.llm
    status.cost = (status.tokens_in * price.price_in_per_million
                   + status.tokens_out * price.price_out_per_million) / 1_000_000
    return status


async def _reliability(conn: AsyncConnection, settings: Settings, status: Status,
                       midnight: datetime) -> None:
    """Customers at their cap, messages kept or failed, business lines (issue #16)."""
    tenant, j = settings.tenant, JOURNAL.c

    async def count(*where: Any) -> int:
        return int((await conn.execute(select(func.count()).select_from(JOURNAL).where(
            j.tenant == tenant, j.from_owner.is_(False), *where))).scalar_one())

    status.unanswered = await count(j.status.in_(("received", "held", "capped")))
    status.capped = await count(j.status == "capped")
    status.failed_today = await count(j.status.in_(("failed", "failed_final")),
                                      j.received_at >= midnight)
    status.to_retry = await count(j.status == "failed", j.received_at >= status.now - timedelta(
        hours=settings.retry.max_age_hours)) if settings.retry.enabled else 0
    cap, day = settings.limits.daily_tokens, utc_day(status.now)
    if cap:
        status.at_cap = int((await conn.execute(select(func.count()).select_from(USAGE).where(
            USAGE.c.tenant == tenant, USAGE.c.day == day,
            USAGE.c.tokens_in + USAGE.c.tokens_out >= cap))).scalar_one())
    if await _has_table(conn, "usage_lines"):
        for line, tokens_in, tokens_out, seconds in (await conn.execute(select(
                LINES.c.line, LINES.c.tokens_in, LINES.c.tokens_out, LINES.c.seconds).where(
                LINES.c.tenant == tenant, LINES.c.day == day))).all():
            status.tokens_in += int(tokens_in)
            status.tokens_out += int(tokens_out)
            if line == MEMORY:
                status.memory_tokens += int(tokens_in) + int(tokens_out)
            elif line == VOICE:
                status.voice_minutes += float(seconds) / 60


def _whatsapp_line(s: Status) -> str:
    beat = s.heartbeat
    if s.transport == "cloud":
        if s.number:
            return f"connected as {mask(s.number)} (Cloud API)"
        known = (f"as {mask(beat.connected_as)}" if beat and beat.connected_as
                 else f"phone number id {s.number_id}")
        return f"Cloud API {known}; {s.number_note}"
    if beat is not None and s.running:
        return f"connected as {mask(beat.connected_as)}" if beat.connected_as else "not connected"
    return "—"


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 86400} days"


def format_status(s: Status, zone: tzinfo = UTC) -> str:
    """The status for the owner; times in the business's timezone (`zone`)."""

    def _when(at: datetime) -> str:
        return local_time(at, zone)

    beat = s.heartbeat
    if beat is None:
        daemon = "not running (it never started for this tenant, or uses another database)"
    elif s.running:
        daemon = (f"running · pid {beat.pid} on {beat.host} · up {_ago(s.now - beat.started_at)}"
                  f" · heartbeat {_ago(s.now - beat.beat_at)} ago")
    elif beat.stopped_at is not None:
        daemon = f"stopped at {_when(beat.stopped_at)} ({_ago(s.now - beat.stopped_at)} ago)"
    else:
        daemon = (f"not running: last heartbeat {_when(beat.beat_at)} "
                  f"({_ago(s.now - beat.beat_at)} ago; it crashed or was killed)")
    whatsapp = _whatsapp_line(s)
    transport = ("Cloud API (whatsapp.transport = cloud)" if s.transport == "cloud"
                 else "WhatsApp Web (linked device)")
    tokens = s.tokens_in + s.tokens_out
    lines = [
        f"wabot status · tenant {s.tenant}",
        f"daemon        {daemon}",
        f"whatsapp      {whatsapp}",
        f"transport     {transport}",
        f"agents        {beat.agents_cached if beat and s.running else 0} cached",
        f"today (UTC)   {s.messages_in} messages in · {s.messages_out} out",
        f"follow-ups    {'n/a' if s.followups is None else f'{s.followups} pending'}",
        f"paused chats  {s.paused}",
        f"LLM today     {tokens:,} tokens ({s.tokens_in:,} in / {s.tokens_out:,} out)"
        f" ≈ ${s.cost:.4f}",
    ]
    lines += [
        f"daily caps    {s.at_cap} customer(s) at their cap · {s.capped} message(s) kept "
        "for when it allows",
        f"unanswered    {s.unanswered} waiting · {s.failed_today} failed today"
        f" ({s.to_retry} to retry once the model answers)",
        f"business      {s.memory_tokens:,} tokens of memory work · "
        f"{s.voice_minutes:.1f} min of voice notes transcribed",
    ]
    lines += [f"restricted    {line}" for line in s.restrictions]
    if beat is not None and beat.last_error:
        at = _when(beat.last_error_at) if beat.last_error_at else "?"
        lines.append(f"last error    {at}: {beat.last_error}")
    else:
        lines.append("last error    none")
    if s.fleet is not None:
        lines += format_fleet(s.fleet)
    return "\n".join(lines)


def status_json(s: Status) -> dict[str, Any]:
    beat = s.heartbeat
    return {
        "tenant": s.tenant, "running": s.running,
        "pid": beat.pid if beat else None, "host": beat.host if beat else None,
        "started_at": beat.started_at.isoformat() if beat else None,
        "heartbeat_at": beat.beat_at.isoformat() if beat else None,
        "transport": s.transport,
        "connected_as": (s.number or None) if s.transport == "cloud" else (
            beat.connected_as if beat and s.running else None),
        "agents_cached": beat.agents_cached if beat and s.running else 0,
        "messages_in_today": s.messages_in, "messages_out_today": s.messages_out,
        "tokens_in_today": s.tokens_in, "tokens_out_today": s.tokens_out,
        "cost_today_usd": round(s.cost, 6), "followups_pending": s.followups,
        "paused_chats": s.paused, "whatsapp_restrictions": s.restrictions,
        "customers_at_daily_cap": s.at_cap, "messages_capped": s.capped,
        "messages_unanswered": s.unanswered, "turns_failed_today": s.failed_today,
        "turns_to_retry": s.to_retry, "memory_tokens_today": s.memory_tokens,
        "voice_minutes_today": round(s.voice_minutes, 2),
        "last_error": beat.last_error if beat and beat.last_error else None,
        "last_error_at": beat.last_error_at.isoformat() if beat and beat.last_error_at else None,
        "fleet": fleet_json(s.fleet) if s.fleet is not None else None,
    }
