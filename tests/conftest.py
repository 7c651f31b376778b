"""Shared fixtures: databases (SQLite always, PostgreSQL when configured), the network
guard, and the fake OpenAI-wire server."""

from __future__ import annotations

import functools
import gc
import importlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bot.stores.db import Database
from tests.fakes.graph_server import graph_server  # noqa: F401  (fixture)
from tests.fakes.netguard import network_guard  # noqa: F401  (autouse fixture)
from tests.fakes.openai_server import FakeOpenAI, openai_server  # noqa: F401  (fixture)

if TYPE_CHECKING:
    from bot.settings import Settings


def _import_neonize_quietly() -> None:
    """Import neonize once, before any test, without failing whichever test runs first.

    `import neonize` runs `os.popen("uname -a").read()` and drops the pipe
    (neonize/utils/platform.py:39); under `-W error` its finalizers raise ResourceWarning,
    which pytest would pin on an unrelated test. Only those, only during this import.
    """
    hook = sys.unraisablehook

    def ignore_popen_leak(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, ResourceWarning):
            hook(unraisable)

    sys.unraisablehook = ignore_popen_leak
    try:
        importlib.import_module("neonize")
    finally:
        sys.unraisablehook = hook


_import_neonize_quietly()

@pytest.fixture(autouse=True)
def ignore_the_users_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test starts from the defaults, wherever the suite runs: the user's own
    `WABOT_*` / `OPENAI_*` variables are removed and the working directory is a fresh one,
    so a `config/wabot.toml`, `config/business.yaml` or `.env` in the clone is not read.
    Test databases (`WABOT_TEST_*`) stay, and so does `WABOT_SCREENSHOTS` (where the browser
    test writes the guides' screenshots: it was removed here, so they were never refreshed)."""
    for name in list(os.environ):
        if name.startswith(("WABOT_", "OPENAI_")) and not name.startswith(
                ("WABOT_TEST_", "WABOT_SCREENSHOTS")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


POSTGRES_ENV = "WABOT_TEST_POSTGRES_URL"
MONGODB_ENV = "WABOT_TEST_MONGODB_URL"
MONGODB_REQUIRED_ENV = "WABOT_TEST_MONGODB_REQUIRED"  # "1": no MongoDB server fails, not skips


def _postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set: PostgreSQL tests need a server URL")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return _database_of_its_own(url, worker) if worker else url


@functools.cache
def _database_of_its_own(url: str, worker: str) -> str:
    """`test` → `test_gw0`: each pytest-xdist worker gets a database of its own on the same
    server, created on first use and kept for the next run, so two workers never race on
    the same tables (concurrent `CREATE TABLE IF NOT EXISTS` on one database can fail)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from bot.stores.db import sync_url

    server = make_url(sync_url(url))
    name = f"{server.database}_{worker}"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    exists = text("SELECT 1 FROM pg_database WHERE datname = :name")
    try:
        with engine.connect() as conn:
            if conn.execute(exists, {"name": name}).first() is None:
                try:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                except DBAPIError:  # another test run made it meanwhile
                    if conn.execute(exists, {"name": name}).first() is None:
                        raise
    finally:
        engine.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    """A MongoDB server URL: WABOT_TEST_MONGODB_URL when set, else a SecantusDB server started
    for this test run (`pip install SecantusDB==0.7.0b3`), else the test skips — or fails,
    when WABOT_TEST_MONGODB_REQUIRED=1 (as in CI). Each test uses a database of its own."""
    url = os.environ.get(MONGODB_ENV, "")
    if url:
        yield url
        return
    from tests.fakes import mongo_server

    if not mongo_server.available():
        why = (f"{MONGODB_ENV} is not set and SecantusDB is not installed "
               f"({mongo_server.INSTALL}): the MongoDB tests need a server")
        if os.environ.get(MONGODB_REQUIRED_ENV) == "1":
            pytest.fail(why)
        pytest.skip(why)
    with mongo_server.mongo_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQL database URL: a fresh SQLite file, or the test PostgreSQL server.

    PostgreSQL is shared between tests: use `tenant` (unique per test) to stay apart.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'wabot.db'}"
    else:
        yield _postgres_url()


@pytest.fixture
async def postgres_db() -> AsyncIterator[Database]:
    """The test PostgreSQL server's database with every table made (shared: keep to a
    tenant or a number of the test's own)."""
    database = Database(_postgres_url())
    await database.create_all()
    yield database
    await database.close()


_TENANTS: set[str] = set()  # made by this session: only their job tables are dropped


@pytest.fixture
def tenant() -> str:
    """A tenant id unique to this test, so tests sharing PostgreSQL never see each other."""
    made = "t" + uuid.uuid4().hex[:12]
    _TENANTS.add(made)
    return made


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """What a module changes in `settings` (make_settings keywords, section by section):
    a module that needs other settings overrides this fixture, e.g.
    `return {"presenter": {"enabled": False}}`."""
    return {}


@pytest.fixture
def settings(db_url: str, tmp_path: Path, openai_server: FakeOpenAI,  # noqa: F811  (fixture)
             tenant: str, settings_overrides: dict[str, Any]) -> Iterator[Settings]:
    """The whole App's settings for one test: its database (`db_url`: SQLite, then
    PostgreSQL, unless the module overrides `db_url`), the fake OpenAI server, a tenant of
    its own and the module's `settings_overrides`. On PostgreSQL the tenant's follow-up
    jobs are dropped after (a SQLite file goes with tmp_path)."""
    # Imported here: bot.app imports neonize, which must come after the quiet import above.
    from bot.followups import erase_tenant_followups
    from tests.fakes.pipeline import make_settings

    yield make_settings(db_url, tmp_path, openai_server, tenant, **settings_overrides)
    if not db_url.startswith("sqlite"):
        erase_tenant_followups(db_url, tenant)


@pytest.fixture(scope="session", autouse=True)
def drop_postgres_job_tables() -> Iterator[None]:
    """Each App on the shared PostgreSQL makes a follow-up job table for its test tenant;
    drop them when the session ends so the test database does not grow without bound."""
    yield
    if not os.environ.get(POSTGRES_ENV) or not _TENANTS:
        return
    url = _postgres_url()
    from sqlalchemy import create_engine, inspect, text

    from bot.stores.db import sync_url

    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            # Only this session's: other sessions on the same server are still using theirs.
            for name in inspect(conn).get_table_names():
                if name.removeprefix("followup_jobs_") in _TENANTS:
                    conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
    finally:
        engine.dispose()


def pytest_collection_finish(session: pytest.Session) -> None:
    """What is imported by now lives as long as the session: it is frozen out of the
    garbage collector, so the collection after each test (below) looks only at what tests
    made (200,000 objects less: 0.2 s a test down to a few ms)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _collect_garbage_at_teardown() -> Iterator[None]:
    """Each test's garbage is collected at its own teardown, so a connection or socket a
    test leaves unclosed is reported against that test, not a later one at random (CI
    once reported an unclosed asyncpg connection in tests/web/test_events.py)."""
    yield
    gc.collect()
