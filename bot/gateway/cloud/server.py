"""The HTTP server that receives the Cloud API webhook: uvicorn inside the daemon's loop.

The daemon owns signals (they only set its stop event), so this server never installs its
own. Port 0 binds an ephemeral port; `address` says which one after `start`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import APIRouter, FastAPI
from loguru import logger

from bot.gateway.base import Gateway
from bot.gateway.cloud.gateway import CloudGateway
from bot.gateway.cloud.webhook import webhook_router
from bot.settings import Settings
from bot.stores.customers import CustomerStore
from bot.stores.outbound import OutboundStore
from bot.web.server import Ahead


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the daemon handles SIGTERM/SIGINT itself


class WebhookServer:
    def __init__(self, router: APIRouter, host: str, port: int,
                 address_file: Path | None = None) -> None:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        app.include_router(router)
        self._server = _Server(uvicorn.Config(
            Ahead.of(app, [router]), host=host, port=port, log_config=None, access_log=False,
            lifespan="off", ws="none", timeout_graceful_shutdown=5))
        self._task: asyncio.Task[None] | None = None
        self.address_file = address_file
        self.address = ""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(), name="webhook-server")
        while not self._server.started:
            if self._task.done():  # the port is taken, or the host cannot be bound
                self._task.result()
                raise OSError("the webhook server could not start")
            await asyncio.sleep(0.01)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.address = f"http://{host}:{port}"
        if self.address_file is not None:
            self.address_file.write_text(self.address + "\n", encoding="utf-8")
        logger.info("webhook listening on {}/webhooks/whatsapp", self.address)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._task = None


def attach(gateway: Gateway, settings: Settings, customers: CustomerStore, *,
           own_server: bool = True) -> WebhookServer | None:
    """For a Cloud API gateway: bind its stores and, when the console does not serve the
    webhook (`own_server`), build a server for it (None otherwise, and for other
    transports)."""
    if not isinstance(gateway, CloudGateway):
        return None
    gateway.bind_store(customers, OutboundStore(customers.db, settings.tenant),
                       settings.state_dir)
    if not own_server:
        return None
    c = settings.cloud
    return WebhookServer(webhook_router(gateway), c.listen_host, c.listen_port,
                         settings.state_dir / "webhook-address")
