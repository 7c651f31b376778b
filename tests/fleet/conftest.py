"""A PostgreSQL database of its own for each fleet test: a node serves every number
registered in its database, so numbers left by one test must never reach the next."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from sqlalchemy.engine import make_url


@pytest.fixture
def fleet_db_url() -> Iterator[str]:
    base = make_url(os.environ["WABOT_TEST_POSTGRES_URL"])
    name = f"fleet_{uuid.uuid4().hex[:12]}"
    admin = base.set(drivername="postgresql")
    conn = psycopg2.connect(admin.render_as_string(hide_password=False))
    conn.autocommit = True
    try:
        conn.cursor().execute(f'CREATE DATABASE "{name}"')
        yield admin.set(database=name).render_as_string(hide_password=False)
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()
