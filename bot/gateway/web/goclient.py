"""The seam to neonize's Go client, and the rules every call across it follows.

Three traits of the Go layer shape the WhatsApp Web transport (see NEONIZE.md):
- its first connect panics, killing the process, when WhatsApp cannot be reached
  (neonize#181, pocketpaw/pocketpaw#159: `panic: failed to dial whatsapp web websocket`),
  so nothing is handed to Go until a plain TCP connect to WhatsApp succeeds (`probe`);
- any call for a client Go does not know (before connect, after stop) is a nil dereference,
  another panic (goneonize main.go looks the client up by uuid and calls whatsmeow on it;
  reproduced: nil pointer in GetPNFromLID, exit 134), so every call goes through `GoGate`:
  it hands out only the live client and makes teardown wait for calls in flight;
- exceptions raised in handlers vanish (neonize drops the run_coroutine_threadsafe future),
  so every handler is wrapped by `guarded`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar, cast

from loguru import logger

from bot.gateway.base import GatewayError
from bot.gateway.web.devices.base import Opening

T = TypeVar("T")
EventHandler = Callable[[Any, Any], Coroutine[Any, Any, None]]


class GoClient(Protocol):
    """The part of `neonize.aioze.client.NewAClient` the gateway uses (tests stand in)."""

    me: Any  # neonize aioze/events.py Event.execute sets it (event code 0) before any other
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
    async def send_presence(self, presence: Any) -> None: ...
    async def PairPhone(
        self, phone: str, show_push_notification: bool, client_name: Any = ...
    ) -> str: ...


ClientFactory = Callable[[Opening, str], GoClient]  # (the device's store, client uuid)


def new_neonize_client(opening: Opening, uuid: str) -> GoClient:
    from neonize.aioze.client import NewAClient

    client = NewAClient(opening.name, uuid=uuid, new_device=opening.new_device)
    if opening.jid is not None:
        # Set after construction, not passed: NewAClient.__init__ makes `jid.User` the
        # client's uuid when a jid is given (aioze/client.py), and then every client of the
        # number shares one uuid, so a dropped client's finalizer (Go's Stop(uuid)) would
        # stop its successor. connect() reads `self.jid` for the device to resume.
        client.jid = device_jid(opening.jid)
    return cast(GoClient, client)


def device_jid(jid: str) -> Any:
    """whatsmeow's `user[.agent][:device]@server` (types.JID.String, the form of
    whatsmeow_device.jid and of neonize's Jid2String) as a neonize JID."""
    from neonize.utils.jid import build_jid

    address, _, server = jid.partition("@")
    address, _, device = address.partition(":")
    user, _, agent = address.partition(".")
    built = build_jid(user, server)
    built.Device = int(device or 0)
    built.RawAgent = int(agent or 0)
    return built


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


class GoTimeout(GatewayError):
    """We stopped waiting; the Go call goes on in its thread (it cannot be cancelled)."""


_IN_GO: ContextVar[bool] = ContextVar("wabot_go_call", default=False)


@contextlib.contextmanager
def go_context() -> Iterator[None]:
    """Threads asked for inside (and by tasks created inside) run in the Go pool."""
    token = _IN_GO.set(True)
    try:
        yield
    finally:
        _IN_GO.reset(token)


class GoThreads(ThreadPoolExecutor):
    """The loop's default executor while the WhatsApp Web gateway runs.

    neonize runs every Go call through `asyncio.to_thread` (neonize aioze/client.py
    `GoCode.execute_sync_function` / `GoCode.__getattr__`), i.e. in the loop's default
    executor, which the scheduler's and the stores' `to_thread` share. A send may hold its
    thread 160 s (whatsmeow's bound, see `tuning.SEND_TIMEOUT`) and the connection's
    `Neonize()` holds one for its life: calls made under `go_context()` go to a pool of
    their own, `whatsapp.go_threads` wide, so blocked Go calls never starve the rest.
    """

    def __init__(self, go_threads: int) -> None:
        super().__init__(thread_name_prefix="wabot-default")
        self.go = ThreadPoolExecutor(go_threads, thread_name_prefix="wabot-go")

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if _IN_GO.get():
            return self.go.submit(fn, *args, **kwargs)
        return super().submit(fn, *args, **kwargs)

    def stop_go(self) -> None:
        """Refuse new Go calls; a call in flight cannot be interrupted, so nobody waits."""
        self.go.shutdown(wait=False, cancel_futures=True)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.stop_go()
        super().shutdown(wait, cancel_futures=cancel_futures)


async def call_go(what: str, call: Awaitable[T], limit: float) -> T:
    """Await a Go call within `limit` seconds, in the Go pool; every failure becomes a
    `GatewayError`."""
    try:
        with go_context():
            return await asyncio.wait_for(call, limit)
    except TimeoutError as exc:
        raise GoTimeout(f"{what} timed out after {limit:g} s") from exc
    except GatewayError:
        raise
    except Exception as exc:
        raise GatewayError(f"{what} failed: {exc}") from exc


class GoGate:
    """Hands out the live Go client, and only while no teardown has begun.

    `open(client)` admits calls for a new client; `close()` refuses new ones and waits
    (bounded) for those in flight, so `client.stop()` never races a Go call on that client.
    """

    def __init__(self) -> None:
        self._client: GoClient | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def client(self) -> GoClient | None:
        return self._client

    def open(self, client: GoClient) -> None:
        self._client = client

    @contextlib.asynccontextmanager
    async def use(self, what: str) -> AsyncIterator[GoClient]:
        client = self._client
        if client is None:
            raise GatewayError(f"cannot {what}: no live WhatsApp client")
        self._in_flight += 1
        self._idle.clear()
        try:
            yield client
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def close(self, within: float) -> GoClient | None:
        """Refuse new calls, wait up to `within` s for calls in flight; the closed client."""
        client, self._client = self._client, None
        if self._in_flight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), within)
        return client


def enum_name(enum: Any, value: int) -> str:
    try:
        return str(enum.Name(value))
    except ValueError:
        return f"code {value}"
