"""The SQL database: one async engine from a URL (SQLite file by default, PostgreSQL by URL)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import DateTime, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

from bot.stores.sqlite_writer import SqliteWriter

T = TypeVar("T")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores no zone: keep UTC there)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DatabaseError(ValueError):
    """A database URL wabot cannot use; the message says how to fix it."""


def async_url(url: str) -> str:
    """Normalise a user's URL to an async driver (`postgres://` → `postgresql+asyncpg://`)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    raise DatabaseError(
        f"unsupported database {backend!r}: use sqlite:///path/to/wabot.db or postgresql://…"
    )


def sync_url(url: str) -> str:
    """The same database through a synchronous driver (APScheduler's job store is sync)."""
    parsed = make_url(async_url(url))
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    return parsed.set(drivername="sqlite").render_as_string(hide_password=False)


class Database:
    """Owns the engine. Tables are SQLModel tables imported before `create_all`."""

    def __init__(self, url: str, **engine_kw: Any) -> None:
        self.url = async_url(url)
        is_sqlite = self.url.startswith("sqlite")
        if is_sqlite:
            db_path = make_url(self.url).database
            if db_path and db_path != ":memory:":
                # customer conversations live here: not for other users
                Path(db_path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                _create_private(Path(db_path))
            engine_kw.setdefault("connect_args", {"timeout": 30})
        else:
            engine_kw.setdefault("pool_size", 10)
            engine_kw.setdefault("max_overflow", 20)
        # Database errors otherwise print the statement's parameters: customers' texts,
        # names and numbers would reach the log.
        engine_kw.setdefault("hide_parameters", True)
        self.engine: AsyncEngine = create_async_engine(self.url, **engine_kw)
        self._write_lock = asyncio.Lock() if is_sqlite else None
        # The per-message writes keep half the pool's connections checked out (`driver`).
        self._drivers = asyncio.Semaphore(max(1, engine_kw.get("pool_size", 5) // 2))
        self._kept: list[tuple[AsyncConnection, Any]] = []  # idle, with their driver's
        self._closed = False  # a write finishing after `close` closes its connection
        self._raw: SqliteWriter | None = None
        self._raw_path = ""
        if is_sqlite:
            path = make_url(self.url).database
            self._raw_path = path if path and path != ":memory:" else ""
        if is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        elif not engine_kw.get("pool_pre_ping"):
            event.listen(self.engine.sync_engine, "checkout", _closed_is_gone)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @asynccontextmanager
    async def begin(self, serial: str = "") -> AsyncIterator[AsyncConnection]:
        """A write transaction. SQLite allows one writer at a time: concurrent writers would
        wait in SQLite's busy handler, which sleeps in steps up to 100 ms, so in-process
        writers queue on a lock instead (readers are not blocked: WAL).

        On PostgreSQL, transactions given the same `serial` run one after the other across
        every process on the database (an advisory lock held to the commit): several nodes
        starting at once would otherwise race creating one table or extension."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                if serial:
                    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                                       {"k": serial})
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """SQLite's one write slot, for a write made on another connection to the same file
        (APScheduler's job store has its own synchronous engine): it queues with ours
        rather than in the busy handler. Nothing on PostgreSQL."""
        if self._write_lock is None:
            yield
            return
        async with self._write_lock:
            yield

    @property
    def raw_writer(self) -> SqliteWriter | None:
        """The per-turn and journal writers' SQLite connection (None: use the engine)."""
        if self._raw is None and self._raw_path and self._write_lock is not None:
            self._raw = SqliteWriter(self._raw_path, self._write_lock)
        return self._raw

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[Any]:
        """PostgreSQL: a pooled connection's own asyncpg connection, for the writes made
        for every message (the journal, the turn, the outbound lines). Through SQLAlchemy
        each of their statements cost several times the driver's own CPU (greenlet hops,
        execution machinery: issue #23); on asyncpg a statement written once is prepared
        once per connection. The caller owns the transaction (`conn.transaction()`); a
        single statement commits itself.

        These connections stay checked out between writes, at most half the pool's: a
        checkout through the engine cost about as much CPU as the write it was for. More
        writers at once queue here rather than open the pool's overflow connections, which
        would close again as they came back to a full pool (a connection opened, its
        statements prepared anew and closed every few writes, dearer than the writes). The
        rest of the pool, and its overflow, serve everything else."""
        async with self._drivers:
            conn, driver = await self._checkout()
            kept = False
            try:
                yield driver
                kept = True
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                kept = True  # a statement's error leaves its connection usable
                # As the engine raises them: callers tell a database failure (the journal
                # holds the message and retries) from their own errors by SQLAlchemyError.
                raise DBAPIError(None, None, exc,
                                 connection_invalidated=driver.is_closed()) from exc
            finally:
                # A transaction left open (its rollback failed, the writer was cancelled
                # midway) must not reach the next writer, whose own would nest in it as a
                # savepoint: the connection is closed instead, and replaced.
                if (kept and not self._closed and not driver.is_closed()
                        and not driver.is_in_transaction()):
                    self._kept.append((conn, driver))
                else:
                    await _discard(conn, driver)

    async def _checkout(self) -> tuple[AsyncConnection, Any]:
        """A kept connection the server has not closed (a restart, an idle timeout, a
        terminated backend: asyncpg learns of it from the socket, no round trip), else one
        from the pool."""
        while self._kept:
            conn, driver = self._kept.pop()
            if not driver.is_closed():
                return conn, driver
            await _discard(conn, driver)
        conn = await self.engine.connect()
        try:
            pooled = await conn.get_raw_connection()
        except BaseException:
            await conn.close()
            raise
        return conn, pooled.driver_connection

    def connect(self) -> AsyncConnection:
        """A connection for reads (and for statements that commit themselves)."""
        return self.engine.connect()

    async def create_all(self) -> None:
        async with self.begin(serial=SCHEMA) as conn:
            await conn.run_sync(SQLModel.metadata.create_all)
            if not self.is_sqlite:
                await widen_columns(conn)

    async def close(self) -> None:
        self._closed = True
        while self._kept:
            await self._kept.pop()[0].close()
        if self._raw is not None:
            await self._raw.close()
            self._raw = None
        await self.engine.dispose()


async def _discard(conn: AsyncConnection, driver: Any) -> None:
    """Close a connection and have the pool replace it."""
    if not driver.is_closed():
        driver.terminate()
    with suppress(Exception):
        await conn.invalidate()
    with suppress(Exception):
        await conn.close()


async def finished(work: Awaitable[T]) -> T:
    """Await database `work` to its end even when the caller is cancelled meanwhile (the
    cancellation is raised after): a query cut off midway leaves its pooled asyncpg
    connection to the garbage collector, unclosed. For loops a stop cancels."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with suppress(Exception):
            await task
        raise


def pool_options(settings: Any) -> dict[str, Any]:
    """The engine's pool from `database_pool` (PostgreSQL; SQLite has no pool to size)."""
    if settings.sql_url.startswith("sqlite"):
        return {}
    return {"pool_size": settings.database_pool, "max_overflow": 2 * settings.database_pool}


SCHEMA = "wabot:schema"  # `begin(serial=…)` of whatever creates tables or extensions

# Columns once created with a length that lost messages; `create_all` makes new tables right,
# existing PostgreSQL ones are altered at start (SQLite ignores VARCHAR lengths).
WIDENED = (("journal", "msg_id"),)  # VARCHAR(128): a longer id failed the journal insert


async def widen_columns(conn: AsyncConnection) -> None:
    """Drop the length of each `WIDENED` column that still has one, in the current schema.
    Idempotent, and cheap once done: widening a VARCHAR rewrites no rows (PostgreSQL ≥ 9.2),
    and a column already unbounded is only read from the catalog."""
    for table, column in WIDENED:
        size = (await conn.execute(text(
            "SELECT character_maximum_length FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = :t AND column_name = :c"),
            {"t": table, "c": column})).scalar()
        if size is not None:
            await conn.execute(text(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE varchar'))


def _create_private(path: Path) -> None:
    """Create the database file owner-only (0600) whatever the umask: outside systemd's
    UMask a shell's 022 would make it world-readable. SQLite gives its -wal and -shm files
    the database file's permissions (sqlite3 os_unix.c, findCreateFileMode)."""
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _closed_is_gone(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """A pooled PostgreSQL connection the server closed (a restart, an idle timeout, a
    terminated backend) is replaced before use. asyncpg learns of the close from the socket
    on its own, so this costs no round trip: SQLAlchemy's pre-ping cost three for every
    checkout (BEGIN, a statement, ROLLBACK), more than the journal's or a turn's work."""
    if dbapi_conn.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers (the CLI, `wabot status`) work while the daemon writes.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
