"""The seam to neonize's Go client, and the rules every call across it follows.

Three traits of the Go layer shape the WhatsApp Web transport (see NEONIZE.md):
- its first connect panics, killing the process, when WhatsApp cannot be reached
  (neonize#181, pocketpaw/pocketpaw#159: `panic: failed to dial whatsapp web websocket`),
  so nothing is handed to Go until a plain TCP connect to WhatsApp succeeds (`probe`);
- any call for a client Go does not know (before connect, after stop) is a nil dereference,
  another panic, so outgoing calls are refused unless we are connected;
- exceptions raised in handlers vanish (neonize drops the run_coroutine_threadsafe future),
  so every handler is wrapped by `guarded`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar, cast

from loguru import logger

from bot.gateway.base import GatewayError

T = TypeVar("T")
EventHandler = Callable[[Any, Any], Coroutine[Any, Any, None]]


class GoClient(Protocol):
    """The part of `neonize.aioze.client.NewAClient` the gateway uses (tests stand in)."""

    event: Callable[[type[Any]], Callable[[EventHandler], None]]
    qr: Callable[[EventHandler], None]

    async def connect(self) -> asyncio.Future[Any]: ...
    async def stop(self) -> None: ...
    async def send_message(self, to: Any, message: Any) -> Any: ...
    async def build_image_message(self, file: bytes, caption: str | None = None) -> Any: ...
    async def build_document_message(
        self, file: bytes, caption: str | None = None, title: str | None = None,
        filename: str | None = None, mimetype: str | None = None) -> Any: ...
    async def mark_read(self, *ids: str, chat: Any, sender: Any, receipt: Any) -> None: ...
    async def send_chat_presence(self, jid: Any, state: Any, media: Any) -> None: ...
    async def download_any(self, message: Any) -> bytes: ...
    async def get_pn_from_lid(self, jid: Any) -> Any: ...
    async def get_me(self) -> Any: ...
    async def revoke_message(self, chat: Any, sender: Any, message_id: str) -> Any: ...
    async def PairPhone(
        self, phone: str, show_push_notification: bool, client_name: Any = ...
    ) -> str: ...


ClientFactory = Callable[[str, str], GoClient]  # (session database, client uuid)


def new_neonize_client(session: str, uuid: str) -> GoClient:
    from neonize.aioze.client import NewAClient

    return cast(GoClient, NewAClient(session, uuid=uuid))


Method = TypeVar("Method", bound=Callable[[Any, Any, Any], Coroutine[Any, Any, None]])


def guarded(event: str) -> Callable[[Method], Method]:
    """Log what a handler raises: neonize drops the future its handlers run in."""

    def wrap(fn: Method) -> Method:
        @functools.wraps(fn)
        async def run(self: Any, client: Any, ev: Any) -> None:
            try:
                await fn(self, client, ev)
            except Exception:
                msg_id = getattr(getattr(ev, "Info", None), "ID", "")
                logger.opt(exception=True).bind(event=event, msg_id=msg_id).error(
                    "{} handler failed (message id {!r})", event, msg_id
                )

        return cast(Method, run)

    return wrap


async def call_go(what: str, call: Awaitable[T], limit: float) -> T:
    """Await a Go call within `limit` seconds; every failure becomes a `GatewayError`."""
    try:
        return await asyncio.wait_for(call, limit)
    except TimeoutError as exc:
        raise GatewayError(f"{what} timed out after {limit:g} s") from exc
    except GatewayError:
        raise
    except Exception as exc:
        raise GatewayError(f"{what} failed: {exc}") from exc


def enum_name(enum: Any, value: int) -> str:
    try:
        return str(enum.Name(value))
    except ValueError:
        return f"code {value}"
