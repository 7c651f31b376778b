"""Webhooks out, from a durable outbox table.

Every event goes into `webhook_outbox` (one row per configured URL) and is POSTed from a
background task, so a dead endpoint never slows a reply, and rows survive restarts. A
delivery that fails is retried with exponential backoff (`backoff_initial_seconds`,
doubling, capped at `backoff_cap_seconds`); an event older than `give_up_hours` is dropped
with a log line.

Each POST carries the JSON body and these headers:

- `X-Wabot-Event`: the event name (`message.received`, …)
- `X-Wabot-Delivery`: the outbox row id (stable across retries: deduplicate on it)
- `X-Wabot-Signature`: `sha256=` + hex HMAC-SHA256 of the raw body with `webhooks.secret`

Verify with `hmac.compare_digest(sig, "sha256=" + hmac.new(secret, body, "sha256").hexdigest())`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any, cast

import httpx
from loguru import logger
from sqlalchemy import ColumnElement, Table, Text, and_, delete, func, insert, select, update
from sqlmodel import Field, SQLModel

from bot.clock import Clock
from bot.models import CustomerKey
from bot.settings import WebhookSettings
from bot.stores.db import Database, UTCDateTime

BATCH = 50
SIGNATURE_HEADER = "X-Wabot-Signature"
EVENT_HEADER = "X-Wabot-Event"
DELIVERY_HEADER = "X-Wabot-Delivery"


class OutboxRow(SQLModel, table=True):
    __tablename__ = "webhook_outbox"

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(max_length=64, index=True)
    url: str = Field(sa_type=Text)
    event: str = Field(max_length=64)
    body: str = Field(sa_type=Text)
    created_at: datetime = Field(sa_type=UTCDateTime)
    next_at: datetime = Field(sa_type=UTCDateTime, index=True)
    attempts: int = 0
    last_error: str = ""


OUTBOX = cast(Table, OutboxRow.__table__)  # type: ignore[attr-defined]


async def export_events(db: Database, key: CustomerKey) -> list[dict[str, Any]]:
    """Webhook events not delivered yet that name this customer (a data-access request)."""
    async with db.connect() as conn:
        rows = (await conn.execute(select(OUTBOX.c.event, OUTBOX.c.body).where(
            _naming(key)).order_by(OUTBOX.c.id))).all()
    return [{"event": event, "body": json.loads(body)} for event, body in rows]


async def forget_events(db: Database, key: CustomerKey) -> None:
    """Webhook events not delivered yet that name this customer: never sent now."""
    async with db.begin() as conn:
        await conn.execute(delete(OUTBOX).where(_naming(key)))


def _naming(key: CustomerKey) -> ColumnElement[bool]:
    return and_(OUTBOX.c.tenant == key.tenant,
                OUTBOX.c.body.contains(key.phone.removeprefix("+"), autoescape=True))


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Outbox:
    def __init__(self, db: Database, tenant: str, settings: WebhookSettings, clock: Clock,
                 client: httpx.AsyncClient | None = None) -> None:
        self.db = db
        self.tenant = tenant
        self.s = settings
        self.clock = clock
        self._client = client
        self._wake: asyncio.Future[None] | None = None  # the delivery loop's wait
        self._writes: set[asyncio.Task[None]] = set()
        self.depth = 0  # rows waiting, as of the last delivery pass (for /metrics)

    @property
    def enabled(self) -> bool:
        return bool(self.s.urls)

    def wants(self, event: str) -> bool:
        return self.enabled and (not self.s.events or event in self.s.events)

    def listen(self, event: str, data: dict[str, Any]) -> None:
        """The Events listener: queue the event without waiting for the database."""
        if not self.wants(event):
            return
        self._spawn(self.enqueue(event, data))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def enqueue(self, event: str, data: dict[str, Any]) -> None:
        now = self.clock.now()
        body = json.dumps({"event": event, "tenant": self.tenant, "at": now.isoformat(),
                           "data": data}, ensure_ascii=False, default=str)
        try:
            async with self.db.begin() as conn:
                await conn.execute(insert(OUTBOX), [
                    {"tenant": self.tenant, "url": url, "event": event, "body": body,
                     "created_at": now, "next_at": now, "attempts": 0, "last_error": ""}
                    for url in self.s.urls])
        except Exception as exc:
            logger.warning("webhook event {} could not be queued: {}", event, exc)
            return
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def flush(self) -> None:
        """Wait for queued writes (tests, and stop)."""
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.s.timeout_seconds,
                                             follow_redirects=False)
        return self._client

    async def count(self) -> int:
        async with self.db.connect() as conn:
            self.depth = int((await conn.execute(select(func.count()).select_from(OUTBOX).where(
                OUTBOX.c.tenant == self.tenant))).scalar_one())
        return self.depth

    async def deliver_due(self) -> int:
        """Deliver every row that is due; returns how many were delivered."""
        now = self.clock.now()
        stmt = (select(OUTBOX).where(OUTBOX.c.tenant == self.tenant, OUTBOX.c.next_at <= now)
                .order_by(OUTBOX.c.id).limit(BATCH))
        async with self.db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        results = await asyncio.gather(*(self._deliver(dict(r), now) for r in rows))
        await self.count()
        return sum(results)

    async def _deliver(self, row: dict[str, Any], now: datetime) -> bool:
        body = row["body"].encode()
        secret = self.s.secret.get_secret_value() if self.s.secret else ""
        headers = {"Content-Type": "application/json", EVENT_HEADER: row["event"],
                   DELIVERY_HEADER: str(row["id"]), SIGNATURE_HEADER: sign(secret, body),
                   "User-Agent": "wabot-webhooks"}
        error = ""
        try:
            resp = await self._http().post(row["url"], content=body, headers=headers)
            if 200 <= resp.status_code < 300:
                await self._delete(row["id"])
                return True
            error = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        attempts = row["attempts"] + 1
        if now - row["created_at"] >= timedelta(hours=self.s.give_up_hours):
            logger.warning("webhook {} #{} to {} given up after {} attempts: {}",
                           row["event"], row["id"], row["url"], attempts, error)
            await self._delete(row["id"])
            return False
        delay = min(self.s.backoff_cap_seconds,
                    self.s.backoff_initial_seconds * 2 ** (attempts - 1))
        async with self.db.begin() as conn:
            await conn.execute(update(OUTBOX).where(OUTBOX.c.id == row["id"]).values(
                attempts=attempts, last_error=error, next_at=now + timedelta(seconds=delay)))
        logger.debug("webhook {} #{} failed ({}); retry in {:.0f} s", row["event"], row["id"],
                     error, delay)
        return False

    async def _delete(self, row_id: int) -> None:
        async with self.db.begin() as conn:
            await conn.execute(delete(OUTBOX).where(OUTBOX.c.id == row_id))

    async def _next_delay(self) -> float | None:
        """Seconds until the next retry is due; None when no row waits."""
        async with self.db.connect() as conn:
            soonest = (await conn.execute(select(func.min(OUTBOX.c.next_at)).where(
                OUTBOX.c.tenant == self.tenant))).scalar_one()
        if soonest is None:
            return None
        return max(0.05, float((soonest - self.clock.now()).total_seconds()))

    async def run(self) -> None:
        """Deliver until cancelled: wakes for new events and for the next retry (nothing
        queued: only for an event)."""
        loop = asyncio.get_running_loop()
        while True:
            self._wake = loop.create_future()  # an event queued during the pass: again
            delay: float | None
            try:
                await self.deliver_due()
                delay = await self._next_delay()
            except Exception as exc:  # the database may be down for a moment: try again
                logger.warning("webhook delivery pass failed: {}", exc)
                delay = 30.0
            await self.clock.idle(self._wake, delay)

    async def close(self) -> None:
        await self.flush()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
