"""The device in PostgreSQL: whatsmeow's tables beside ours, one device per number.

goneonize opens PostgreSQL through lib/pq (v1.12.3 in neonize 0.5.2's go.mod) when the
name given to `NewAClient` starts with "postgres" (main.go `getDB`) and creates whatsmeow's
tables itself (`sqlstore.New` upgrades the schema). Every number's device is a row of
`whatsmeow_device`, so ours says which row is the number's: `number_devices`. Leases make
sure one node at a time opens it.

Known cost: goneonize opens a new container (a lib/pq pool) at every `Neonize()` call and
its `Stop` never closes it, so each client the connection makes (one per connection
attempt) leaves one idle PostgreSQL connection until the process exits (measured: five
clients, five connections). The probe keeps attempts to those WhatsApp could answer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from loguru import logger
from sqlalchemy import Column, DateTime, MetaData, String, Table, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bot.gateway.web.devices.base import DeviceStore, Opening
from bot.stores.db import async_url

# Created by this store only (checkfirst), on PostgreSQL only: a SQLite install never
# gets it, and no existing table changes (there is no migration tool).
_METADATA = MetaData()
NUMBER_DEVICES = Table(
    "number_devices", _METADATA,
    Column("number", String(64), primary_key=True),  # the number's key (its tenant)
    Column("jid", String(128), nullable=False),  # whatsmeow_device.jid
    Column("linked_at", DateTime(timezone=True), nullable=False),
)

# The libpq keywords lib/pq v1.12.3 reads (connector.go `postgres:` tags). Any other key
# of the query string would be sent to the server as a run-time parameter and refused.
PQ_KEYS = frozenset({
    "application_name", "binary_parameters", "connect_timeout",
    "disable_prepared_binary_result", "fallback_application_name", "host", "hostaddr",
    "krbspn", "krbsrvname", "load_balance_hosts", "max_protocol_version",
    "min_protocol_version", "options", "passfile", "port", "service",
    "ssl_max_protocol_version", "ssl_min_protocol_version", "sslcert", "sslinline", "sslkey",
    "sslmode", "sslnegotiation", "sslrootcert", "sslsni", "target_session_attrs",
})
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def pq_url(url: str) -> str:
    """The database URL as lib/pq takes it: `postgres://user:pass@host:port/db?sslmode=…`.

    The SQLAlchemy driver (`postgresql+asyncpg`) goes; asyncpg's `ssl=<mode>` becomes
    `sslmode`; keys lib/pq does not know are dropped (their names are logged). With no
    sslmode, `prefer`: lib/pq's own default is `require` (connector.go: "Require SSL, but
    skip verification. This is the default"), which fails against a server without TLS
    ("pq: SSL is not enabled on the server") where asyncpg, the daemon's driver, prefers
    TLS and falls back. Set sslmode=require or verify-full in database_url to insist.
    """
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    query: dict[str, str] = {}
    dropped = []
    for key, value in parsed.query.items():
        value = value if isinstance(value, str) else value[-1]
        if key == "ssl" and value in SSL_MODES:
            query.setdefault("sslmode", value)
        elif key in PQ_KEYS:
            query[key] = value
        else:
            dropped.append(key)
    if dropped:
        logger.info("the WhatsApp session store ignores database_url's {} (lib/pq does not "
                    "know them)", ", ".join(sorted(dropped)))
    query.setdefault("sslmode", "prefer")
    user = quote(parsed.username or "", safe="")
    password = f":{quote(parsed.password, safe='')}" if parsed.password else ""
    auth = f"{user}{password}@" if user or password else ""
    host = parsed.host or ""
    host = f"[{host}]" if ":" in host else host  # IPv6
    port = f":{parsed.port}" if parsed.port else ""
    params = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items())
    return f"postgres://{auth}{host}{port}/{quote(parsed.database or '', safe='')}?{params}"


def shown(url: str) -> str:
    """A database URL fit for logs and status lines: the password hidden."""
    return make_url(url.replace("postgres://", "postgresql://", 1)).render_as_string(
        hide_password=True)


class DatabaseStore(DeviceStore):
    """Number `number`'s device in the PostgreSQL database `url` (the daemon's own).

    A few statements per connection attempt, never in a turn's path: no pool is kept."""

    def __init__(self, url: str, number: str) -> None:
        self.number = number
        self.go_url = pq_url(url)
        self.where = f"the database {shown(url)}"
        self._url = url
        password = make_url(url.replace("postgres://", "postgresql://", 1)).password
        self._secrets = {password, quote(password, safe="")} - {""} if password else set()
        self._engine: AsyncEngine | None = None
        self._jid: str | None = None  # the device last opened or linked

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            # Errors would otherwise print the statement's parameters (the JID).
            self._engine = create_async_engine(async_url(self._url), poolclass=NullPool,
                                               hide_parameters=True)
        return self._engine

    async def open(self) -> Opening:
        async with self.engine.begin() as conn:
            await conn.run_sync(_METADATA.create_all, checkfirst=True)
            jid = (await conn.execute(select(NUMBER_DEVICES.c.jid).where(
                NUMBER_DEVICES.c.number == self.number))).scalar()
            if jid is not None and not await _device_exists(conn, jid):
                # goneonize main.go: GetDevice answers nil for a JID it does not have and
                # whatsmeow.NewClient(nil) then panics the process. whatsmeow deletes the
                # device itself on logout (store.Device.Delete), possibly while we were away.
                logger.warning("the linked device of number {} is gone from the database "
                               "(logged out): a new QR code follows", self.number)
                await conn.execute(delete(NUMBER_DEVICES).where(
                    NUMBER_DEVICES.c.number == self.number))
                jid = None
        self._jid = jid
        return Opening(self.go_url, jid=jid, new_device=jid is None, linked=jid is not None)

    async def linked(self, jid: str) -> None:
        if jid == self._jid:
            return
        async with self.engine.begin() as conn:  # linked_at: the database's clock
            await conn.execute(insert(NUMBER_DEVICES).values(
                number=self.number, jid=jid, linked_at=func.now()).on_conflict_do_update(
                index_elements=[NUMBER_DEVICES.c.number],
                set_={"jid": jid, "linked_at": func.now()}))
        self._jid = jid
        logger.info("number {}: its WhatsApp session is kept in {}", self.number, self.where)

    async def forget(self) -> list[str]:
        async with self.engine.begin() as conn:
            jid = (await conn.execute(select(NUMBER_DEVICES.c.jid).where(
                NUMBER_DEVICES.c.number == self.number))).scalar() or self._jid
            await conn.execute(delete(NUMBER_DEVICES).where(
                NUMBER_DEVICES.c.number == self.number))
            if jid is not None:
                await _delete_device(conn, jid)
        self._jid = None
        return [f"number {self.number}'s linked device in {self.where}"] if jid else []

    def scrub(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


async def _whatsmeow_tables(conn: Any) -> bool:
    return bool((await conn.execute(text("SELECT to_regclass('whatsmeow_device')"))).scalar())


async def _device_exists(conn: Any, jid: str) -> bool:
    if not await _whatsmeow_tables(conn):
        return False
    return bool((await conn.execute(text("SELECT 1 FROM whatsmeow_device WHERE jid = :jid"),
                                    {"jid": jid})).scalar())


async def _delete_device(conn: Any, jid: str) -> None:
    """whatsmeow's own logout (store.Device.Delete: DELETE FROM whatsmeow_device) may not
    have run, or run only half: delete the device row, which cascades to every table that
    references it (store/sqlstore/upgrades/00-latest-schema.sql), and the privacy tokens,
    the one per-device table without that foreign key. whatsmeow_lid_map is shared by every
    device (LID ↔ phone facts, not keys): it stays."""
    if not await _whatsmeow_tables(conn):
        return
    await conn.execute(text("DELETE FROM whatsmeow_device WHERE jid = :jid"), {"jid": jid})
    if (await conn.execute(text("SELECT to_regclass('whatsmeow_privacy_tokens')"))).scalar():
        await conn.execute(text("DELETE FROM whatsmeow_privacy_tokens WHERE our_jid = :jid"),
                           {"jid": jid})
