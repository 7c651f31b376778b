"""Fixtures for the WhatsApp gateway: a stand-in Go layer, a virtual clock, a local probe
target, and captured log records."""

from __future__ import annotations

import asyncio
import io
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

# neonize is imported quietly by tests/conftest.py before this module loads.
from bot.clock import VirtualClock
from bot.gateway.web.devices.base import DeviceStore
from bot.gateway.web.gateway import NeonizeGateway
from bot.gateway.web.tuning import Tuning
from bot.settings import WhatsAppSettings
from tests.fakes.databases import fresh_database
from tests.gateway.web.builders import StandInClient, StandInFactory

TENANT = "tienda"


class RecordingClock(VirtualClock):
    """A virtual clock that also remembers every sleep asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


def free_port() -> int:
    """A loopback port nobody listens on (connecting to it is refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def clock() -> RecordingClock:
    return RecordingClock()


@pytest.fixture
def factory() -> StandInFactory:
    return StandInFactory()


@pytest.fixture
def statuses() -> list[str]:
    return []


@pytest.fixture
def console() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
async def reachable() -> AsyncIterator[tuple[str, int]]:
    """A listening loopback address: what the probe sees when WhatsApp is reachable."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    yield "127.0.0.1", server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
async def make_gateway(
    tmp_path: Path,
    clock: RecordingClock,
    factory: StandInFactory,
    statuses: list[str],
    console: io.StringIO,
    reachable: tuple[str, int],
) -> AsyncIterator[Callable[..., NeonizeGateway]]:
    made: list[NeonizeGateway] = []
    settings_fields = set(WhatsAppSettings.model_fields)
    tuning_fields = {f.name for f in fields(Tuning)}

    def make(*, allow_groups: bool = False, devices: DeviceStore | None = None,
             tenant: str = TENANT, **options: Any) -> NeonizeGateway:
        """Each option goes where its name is: the settings section, or the `Tuning`.
        `devices`: where the linked device lives (default: the session file)."""
        unknown = set(options) - settings_fields - tuning_fields
        assert not unknown, f"neither a WhatsAppSettings field nor a Tuning one: {unknown}"
        # Unchecked (model_copy): tests go below the settings' floors (2 Go threads) and
        # hand the gateway numbers it must refuse itself.
        settings = WhatsAppSettings().model_copy(update={
            "probe_host": reachable[0], "probe_port": reachable[1], "call_timeout": 2.0,
            **{k: v for k, v in options.items() if k in settings_fields}})
        tuning = Tuning(**{"client_factory": factory, "console": console,
                           **{k: v for k, v in options.items() if k in tuning_fields}})
        state_dir = tmp_path / ("state" if tenant == TENANT else f"state-{tenant}")
        gateway = NeonizeGateway(tenant, settings, clock, state_dir=state_dir,
                                 allow_groups=allow_groups, on_status=statuses.append,
                                 tuning=tuning, devices=devices)
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        await gateway.stop()


@pytest.fixture
async def running(
    make_gateway: Callable[..., NeonizeGateway], factory: StandInFactory
) -> tuple[NeonizeGateway, StandInClient]:
    """A started gateway whose Go client is connecting (not yet connected)."""
    gateway = make_gateway()
    await gateway.start()
    return gateway, await factory.next_client()


@pytest.fixture
def log_records() -> Iterator[list[dict[str, Any]]]:
    """Every loguru record emitted during the test (DEBUG and up)."""
    records: list[dict[str, Any]] = []
    sink_id = logger.add(lambda message: records.append(message.record), level="DEBUG")
    yield records
    logger.remove(sink_id)


@pytest.fixture
def devices_db_url() -> Iterator[str]:
    """A PostgreSQL database of its own (created, then dropped): whatsmeow's tables and
    `number_devices` start empty, and a test's devices never reach the next one."""
    if not os.environ.get("WABOT_TEST_POSTGRES_URL"):
        pytest.skip("WABOT_TEST_POSTGRES_URL is not set: the database store needs PostgreSQL")
    with fresh_database("devices") as url:
        yield url
