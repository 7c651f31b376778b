"""A PostgreSQL database of its own, created on the test server and dropped after: for the
tests and benchmarks whose processes serve every number or device found in their database,
so nothing of one may reach the next."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy.engine import make_url


@contextmanager
def fresh_database(prefix: str, base_url: str | None = None) -> Iterator[str]:
    """Its URL; `base_url` (default: WABOT_TEST_POSTGRES_URL) names the server."""
    base = make_url(base_url or os.environ["WABOT_TEST_POSTGRES_URL"])
    base = base.set(drivername="postgresql")
    admin = base.render_as_string(hide_password=False)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _execute(admin, f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        _execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _execute(url: str, statement: str) -> None:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        conn.cursor().execute(statement)
    finally:
        conn.close()


def db_url_of_its_own(prefix: str) -> Callable[..., Iterator[str]]:
    """A module's `db_url` fixture (SQLite, then PostgreSQL) whose PostgreSQL database is
    made for each test: for tests whose process registers its number (a lease) or lists the
    numbers registered, since a node serves every number found in its database."""

    @pytest.fixture(params=["sqlite", "postgres"])
    def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
        if request.param == "sqlite":
            yield f"sqlite:///{tmp_path / 'wabot.db'}"
            return
        if not os.environ.get("WABOT_TEST_POSTGRES_URL"):
            pytest.skip("WABOT_TEST_POSTGRES_URL is not set: PostgreSQL tests need a server URL")
        with fresh_database(prefix) as url:
            yield url

    return db_url
