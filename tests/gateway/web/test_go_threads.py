"""A blocked Go call starved everyone else's threads (WhatsApp Web #12.10): neonize runs Go
calls with `asyncio.to_thread` (aioze/client.py GoCode), in the loop's default executor,
which the scheduler and the stores share; a send may hold its thread 160 s. Go calls now
run in a pool of their own, sized by `whatsapp.go_threads`, shut down on stop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from neonize.aioze.events import ConnectedEv
from neonize.proto.Neonize_pb2 import SendResponse

from bot.gateway.base import GatewayError
from bot.gateway.web.gateway import NeonizeGateway
from tests.gateway.web.builders import CUSTOMER, StandInClient, StandInFactory

CHAT = f"{CUSTOMER}@s.whatsapp.net"
BLOCKED_SENDS = 40  # more than any default executor's threads (min(32, cpus + 4))


async def test_blocked_go_calls_leave_the_default_executor_free(
        make_gateway: Callable[..., NeonizeGateway], factory: StandInFactory) -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)

    def go_send() -> SendResponse:  # as neonize: a blocking FFI call in a worker thread
        entered.release()
        release.wait(30)
        return SendResponse(ID="OUT")

    def configure(client: StandInClient) -> None:
        async def send_message(to: Any, message: Any) -> SendResponse:
            return await asyncio.to_thread(go_send)

        client.send_message = send_message  # type: ignore[method-assign]

    factory.configure = configure
    gateway = make_gateway(go_threads=2)
    await gateway.start()
    client = await factory.next_client()
    await client.fire(ConnectedEv, ConnectedEv(status=True))
    sends = [asyncio.create_task(gateway.send_text(CHAT, f"hola {i}"))
             for i in range(BLOCKED_SENDS)]
    try:
        await asyncio.to_thread(entered.acquire, True, 5)  # the Go pool is busy now
        loop = asyncio.get_running_loop()
        # the scheduler's and the stores' threads still run at once
        assert await asyncio.wait_for(loop.run_in_executor(None, lambda: 42), 5) == 42
    finally:
        release.set()
    assert {await s for s in sends} == {"OUT"}


async def test_go_calls_are_refused_after_stop(
        make_gateway: Callable[..., NeonizeGateway], factory: StandInFactory) -> None:
    gateway = make_gateway(go_threads=2, connect_wait=0)
    await gateway.start()
    client = await factory.next_client()
    await client.fire(ConnectedEv, ConnectedEv(status=True))
    threads = gateway._threads
    assert threads is not None
    await gateway.stop()
    with pytest.raises(RuntimeError, match="shutdown"):
        threads.go.submit(lambda: None)
    with pytest.raises(GatewayError):
        await gateway.send_text(CHAT, "hola")
