"""WhatsApp's servers as the fleet tests need them: a TCP server on 127.0.0.1 that the
stand-in Go layer (`tests/fakes/standin_go.py`) of every `wabot run` process connects to.

Each connection says which number (the gateway's tenant) and which node it is. A customer's
message goes to the newest connection of its number, and stays queued until that
connection acknowledges it (the Go layer acknowledges once the gateway's handler returned,
so a message that reached a node killed before handling it is delivered again on the next
connection, as WhatsApp's offline queue does). Every send is recorded with the node that
made it, also from a connection that a newer one replaced: the fencing test counts those.

Protocol: one JSON object per line. Client → server: `hello {number, node}`, `send {rid,
to, text}`, `ack {id}`, `read`/`typing` (recorded). Server → client: `welcome {phone}`,
`message {id, from, text, name}`, `sent {rid, id}`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self


@dataclass(frozen=True)
class Sent:
    number: str
    node: str
    to: str
    text: str
    at: float  # time.monotonic() on arrival


@dataclass
class _Inbound:
    id: str
    sender: str
    text: str
    name: str


class _Conn:
    def __init__(self, number: str, node: str, writer: asyncio.StreamWriter) -> None:
        self.number = number
        self.node = node
        self.writer = writer
        self.unacked: dict[str, _Inbound] = {}

    def write(self, obj: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write((json.dumps(obj) + "\n").encode())


class FakeWhatsApp:
    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.listeners: list[Callable[[Sent], None]] = []  # called on the server's thread
        self.hellos: list[tuple[str, str, float]] = []  # (number, node, monotonic time)
        self._current: dict[str, _Conn] = {}
        self._conns: set[_Conn] = set()
        self._queued: dict[str, dict[str, _Inbound]] = defaultdict(dict)  # not yet acked
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self.port = 0

    # the test's side
    def deliver(self, number: str, sender: str, msg_id: str, text: str,
                name: str = "Cliente") -> None:
        """A customer writes to `number` (any thread)."""
        assert self._loop is not None
        inbound = _Inbound(msg_id, sender, text, name)
        self._loop.call_soon_threadsafe(self._deliver, number, inbound)

    def connected(self, number: str) -> str | None:
        """The node whose connection gets `number`'s messages now."""
        conn = self._current.get(number)
        return conn.node if conn is not None else None

    # the server's loop
    def _deliver(self, number: str, inbound: _Inbound) -> None:
        self._queued[number][inbound.id] = inbound
        conn = self._current.get(number)
        if conn is not None:
            self._push(conn, inbound)

    def _push(self, conn: _Conn, inbound: _Inbound) -> None:
        conn.unacked[inbound.id] = inbound
        conn.write({"op": "message", "id": inbound.id, "from": inbound.sender,
                    "text": inbound.text, "name": inbound.name})

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn: _Conn | None = None
        try:
            while line := await reader.readline():
                msg = json.loads(line)
                op = msg.get("op")
                if op == "hello":
                    conn = _Conn(msg["number"], msg["node"], writer)
                    self._conns.add(conn)
                    self.hellos.append((conn.number, conn.node, time.monotonic()))
                    self._current[conn.number] = conn
                    conn.write({"op": "welcome", "phone": _phone_of(conn.number)})
                    for inbound in list(self._queued[conn.number].values()):
                        self._push(conn, inbound)
                elif conn is None:
                    break
                elif op == "send":
                    sent = Sent(conn.number, conn.node, str(msg["to"]), str(msg["text"]),
                                time.monotonic())
                    self.sent.append(sent)
                    for listener in self.listeners:
                        listener(sent)
                    conn.write({"op": "sent", "rid": msg["rid"], "id": f"OUT{next(self._ids)}"})
                elif op == "ack":
                    self._queued[conn.number].pop(msg["id"], None)
                    conn.unacked.pop(msg["id"], None)
        except (ConnectionError, json.JSONDecodeError):
            pass
        finally:
            if conn is not None:
                self._conns.discard(conn)
                if self._current.get(conn.number) is conn:
                    del self._current[conn.number]
            writer.close()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, limit=1 << 20))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        self._server.close()
        for conn in self._conns:
            conn.writer.close()
        loop.run_until_complete(self._server.wait_closed())
        loop.close()

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="fake-whatsapp", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _phone_of(number: str) -> str:
    """The business phone a number key stands for (digits, stable per key)."""
    return "52155" + str(abs(hash(number)) % 10**8).zfill(8)
