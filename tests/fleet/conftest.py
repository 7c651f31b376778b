"""A PostgreSQL database of its own for each fleet test: a node serves every number
registered in its database, so numbers left by one test must never reach the next."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.databases import fresh_database


@pytest.fixture
def fleet_db_url() -> Iterator[str]:
    with fresh_database("fleet") as url:
        yield url
