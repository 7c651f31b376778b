"""The Go layer's stand-in for whole `wabot run` processes: a client with the shape of
neonize's `NewAClient` (as `tests/gateway/web/builders.StandInClient`) that talks to the
fake WhatsApp servers of `tests/fakes/whatsapp_server.py` over TCP and hands the gateway
real neonize protobuf events.

    python -m tests.fakes.standin_go run      # `wabot run` with this in place of neonize

The server's address comes from `WABOT_STANDIN_WHATSAPP` (host:port), the node's name from
`WABOT_FLEET__NODE_ID`. Nothing of this is in the product: the module swaps the client
maker before the gateway's tuning is imported, then runs the CLI as `python -m bot` would.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from neonize.aioze.events import ConnectedEv, DisconnectedEv, MessageEv
from neonize.proto.Neonize_pb2 import Device, SendResponse

from bot.gateway.web.devices.base import Opening
from tests.gateway.web.builders import event, jid, text

Handler = Callable[[Any, Any], Awaitable[None]]


class NetworkClient:
    def __init__(self, opening: Opening, uuid: str, address: str, node: str) -> None:
        self.opening = opening
        # The gateway names each client `wabot-{tenant}-{generation}`.
        self.number = uuid.removeprefix("wabot-").rsplit("-", 1)[0]
        self.address = address
        self.node = node
        self.handlers: dict[type[Any], Handler] = {}
        self.me: Device | None = None
        self._phone = ""
        self._writer: asyncio.StreamWriter | None = None
        self._go_task: asyncio.Future[None] | None = None
        self._pending: dict[int, asyncio.Future[str]] = {}
        self._rids = itertools.count(1)
        self._reader_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[None]] = set()

    def event(self, event_type: type[Any]) -> Callable[[Handler], None]:
        def register(handler: Handler) -> None:
            self.handlers[event_type] = handler

        return register

    def qr(self, handler: Any) -> None:
        pass  # the stand-in is linked from the start

    async def connect(self) -> asyncio.Future[None]:
        host, port = self.address.rsplit(":", 1)
        reader, self._writer = await asyncio.open_connection(host, int(port), limit=1 << 20)
        self._write({"op": "hello", "number": self.number, "node": self.node})
        welcome = json.loads(await reader.readline())
        self._phone = welcome["phone"]
        self.me = Device(JID=jid(self._phone), PushName=self.number)
        if not self.opening.name.startswith("postgres"):  # a session file, not the database
            path = Path(self.opening.name)
            if path.is_file() and path.stat().st_size == 0:
                path.write_bytes(b"stand-in session")  # as Go writes the device's keys
        self._go_task = asyncio.get_running_loop().create_future()
        self._reader_task = asyncio.create_task(self._read(reader))
        if ConnectedEv in self.handlers:  # after connect() returned, as Go's event does
            task = asyncio.ensure_future(self._connected())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return self._go_task

    async def _connected(self) -> None:
        await asyncio.sleep(0)
        await self.handlers[ConnectedEv](self, ConnectedEv())

    def _write(self, obj: dict[str, Any]) -> None:
        if self._writer is None or self._writer.is_closing():
            raise ConnectionError("not connected to WhatsApp")
        self._writer.write((json.dumps(obj) + "\n").encode())

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                msg = json.loads(line)
                if msg["op"] == "message":
                    task = asyncio.ensure_future(self._deliver(msg))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                elif msg["op"] == "sent":
                    future = self._pending.pop(msg["rid"], None)
                    if future is not None and not future.done():
                        future.set_result(msg["id"])
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the connection to WhatsApp closed"))
            if self._go_task is not None and not self._go_task.done():
                if DisconnectedEv in self.handlers:
                    with contextlib.suppress(Exception):
                        await self.handlers[DisconnectedEv](self, DisconnectedEv())
                self._go_task.set_result(None)

    async def _deliver(self, msg: dict[str, Any]) -> None:
        ev = event(text(msg["text"]), msg_id=msg["id"], chat=jid(msg["from"]),
                   push_name=msg["name"])
        try:
            await self.handlers[MessageEv](self, ev)
        except Exception:
            return  # not acknowledged: delivered again on the next connection
        with contextlib.suppress(ConnectionError):
            self._write({"op": "ack", "id": msg["id"]})

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._go_task is not None and not self._go_task.done():
            self._go_task.set_result(None)

    async def send_message(self, to: Any, message: Any) -> SendResponse:
        rid = next(self._rids)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        body = message.conversation or message.extendedTextMessage.text
        self._write({"op": "send", "rid": rid, "to": to.User, "text": body})
        return SendResponse(ID=await future)

    async def mark_read(self, *ids: str, chat: Any, sender: Any, receipt: Any) -> None:
        self._write({"op": "read", "ids": list(ids)})

    async def send_chat_presence(self, jid: Any, state: Any, media: Any) -> None:
        self._write({"op": "typing"})

    async def send_presence(self, presence: Any) -> None:
        pass

    async def get_me(self) -> Device:
        assert self.me is not None
        return self.me

    async def get_pn_from_lid(self, lid: Any) -> Any:
        return jid("", "")

    async def download_any(self, message: Any) -> bytes:
        raise ConnectionError("the stand-in carries text only")

    async def build_image_message(self, file: bytes, caption: str | None = None) -> Any:
        raise ConnectionError("the stand-in carries text only")

    async def build_document_message(self, file: bytes, caption: str | None = None,
                                     title: str | None = None, filename: str | None = None,
                                     mimetype: str | None = None) -> Any:
        raise ConnectionError("the stand-in carries text only")

    async def revoke_message(self, chat: Any, sender: Any, message_id: str) -> Any:
        raise ConnectionError("the stand-in carries text only")

    async def PairPhone(self, phone: str, show_push_notification: bool,
                        client_name: Any = None) -> str:
        return "STANDIN1"


def factory(opening: Opening, uuid: str) -> NetworkClient:
    return NetworkClient(opening, uuid, os.environ["WABOT_STANDIN_WHATSAPP"],
                         os.environ.get("WABOT_FLEET__NODE_ID", "node"))


def main() -> None:
    import bot.gateway.web.goclient as goclient

    goclient.new_neonize_client = factory  # type: ignore[assignment]
    from bot.cli import main as cli

    sys.argv = ["wabot", *sys.argv[1:]]
    cli()


if __name__ == "__main__":
    main()
