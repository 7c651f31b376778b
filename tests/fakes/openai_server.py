"""A real HTTP server on 127.0.0.1 speaking the OpenAI wire format, scripted per test.

It runs its own asyncio loop in a daemon thread, so it keeps answering while the test's loop
is busy and can serve a `wabot` subprocess too. Latency is an `asyncio.sleep`, so a few hundred
keep-alive connections at 200 ms each cost nothing.

    server.reply("Hello!", match="Summarize")   # the summary request gets this…
    server.tool_call("book", {"at": "10:00"})    # …the next chat request gets a tool call
    gate = server.hold(match="Summarize")        # held until gate.release()

Scripted responses and holds apply to chat completions; a queued response is taken by the
first request it matches, in queue order. Unmatched requests go to `responder`, or get the
default reply "OK: <last user message>".

Standalone, for benchmarks: `python -m tests.fakes.openai_server --latency 0.2 [--port N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from http.client import responses
from typing import Any, Self, TypeVar

import pytest

Body = dict[str, Any]
Match = str | Callable[[Body], bool]
DEFAULT_USAGE = (10, 5)
DEFAULT_MODELS = ("gpt-4o-mini", "fake-model")
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}


@dataclass(frozen=True)
class Reply:
    text: str
    usage: tuple[int, int] = DEFAULT_USAGE


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] | str  # a str is sent as-is: malformed JSON is a test case too


@dataclass(frozen=True)
class ToolCalls:
    calls: tuple[ToolCall, ...]
    usage: tuple[int, int] = DEFAULT_USAGE


@dataclass(frozen=True)
class Error:
    status: int
    message: str = "fake error"


@dataclass(frozen=True)
class Raw:
    """A body sent as-is: HTML from a proxy, truncated JSON, nothing at all."""

    body: bytes
    status: int = 200
    content_type: str = "application/json"


Scripted = Reply | ToolCalls | Error | Raw
Responder = Callable[[Body], Scripted | str]


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Body  # the JSON body, or the form fields (files as `Upload`)


@dataclass(frozen=True)
class _Entry:
    response: Scripted | None  # None: whatever the request would get otherwise
    match: Match | None
    delay: float = 0.0


class Gate:
    """Holds one matching chat request until `release()` (or `set()`, as on an Event)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, match: Match | None) -> None:
        self.match = match
        self.arrived = threading.Event()  # a request is waiting at the gate
        self._loop = loop
        self._released = threading.Event()
        self._opened = asyncio.Event()  # set only on the server's loop

    def release(self) -> None:
        self._released.set()
        with contextlib.suppress(RuntimeError):  # the server already stopped
            self._loop.call_soon_threadsafe(self._opened.set)

    set = release

    def is_set(self) -> bool:
        return self._released.is_set()

    async def wait_arrived(self, timeout: float = 5.0) -> None:
        """Wait, from any loop, until a request reaches the gate."""
        if not await asyncio.to_thread(self.arrived.wait, timeout):
            raise TimeoutError("no request reached the gate")

    async def _pass(self) -> None:
        self.arrived.set()
        await self._opened.wait()


_Waiting = TypeVar("_Waiting", _Entry, Gate)


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    keep_alive: bool


class FakeOpenAI:
    def __init__(
        self,
        *,
        latency: float = 0.0,
        models: tuple[str, ...] = DEFAULT_MODELS,
        transcript: str | Error = "transcribed audio",
        port: int = 0,
        record: bool = True,
    ) -> None:
        self.latency = latency  # added to every chat completion and transcription
        self.models = list(models)
        self.transcript = transcript
        self.responder: Responder | None = None
        # /v1/embeddings: a text → vector function (default: hashed bag of words), or an
        # Error every embeddings request gets.
        self.embed: Callable[[str], list[float]] = _hashed_words
        self.embeddings_error: Error | None = None
        self.models_raw: Raw | None = None  # set: GET /v1/models answers this instead
        self.requests: list[Recorded] = []
        self.base_url = ""
        self._port = port
        self._record = record
        self._lock = threading.Lock()
        self._queue: list[_Entry] = []
        self._gates: list[Gate] = []
        self._ids = itertools.count(1)
        self._failures: list[BaseException] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    # -- scripting (any thread) ----------------------------------------------------------

    def reply(
        self,
        text: str | Body,
        *,
        usage: tuple[int, int] = DEFAULT_USAGE,
        match: Match | None = None,
    ) -> None:
        """Queue a text reply; a dict is sent as its JSON (structured outputs)."""
        content = text if isinstance(text, str) else json.dumps(text)
        self._enqueue(_Entry(Reply(content, usage), match))

    def tool_call(
        self,
        name: str,
        arguments: dict[str, Any] | str,
        *more_calls: tuple[str, dict[str, Any] | str],
        usage: tuple[int, int] = DEFAULT_USAGE,
        match: Match | None = None,
    ) -> None:
        """Queue one reply calling `name`, plus any `(name, arguments)` pairs in parallel."""
        calls = (ToolCall(name, arguments), *(ToolCall(n, a) for n, a in more_calls))
        self._enqueue(_Entry(ToolCalls(calls, usage), match))

    def error(
        self, status: int, message: str = "fake error", *, match: Match | None = None
    ) -> None:
        self._enqueue(_Entry(Error(status, message), match))

    def raw(
        self,
        body: bytes | str,
        *,
        status: int = 200,
        content_type: str = "application/json",
        match: Match | None = None,
    ) -> None:
        """Queue a chat answer sent byte for byte (malformed answers are test cases too)."""
        data = body.encode() if isinstance(body, str) else body
        self._enqueue(_Entry(Raw(data, status, content_type), match))

    def hang(self, seconds: float, *, match: Match | None = None) -> None:
        """Queue a reply that takes `seconds` (on top of `latency`): for client timeouts."""
        self._enqueue(_Entry(None, match, seconds))

    def hold(self, *, match: Match | None = None) -> Gate:
        """Hold the next matching chat request until the returned gate is released."""
        if self._loop is None:
            raise RuntimeError("start the server before holding requests")
        gate = Gate(self._loop, match)
        with self._lock:
            self._gates.append(gate)
        return gate

    @property
    def pending(self) -> int:
        """Queued responses no request has taken yet."""
        with self._lock:
            return len(self._queue)

    def chat_requests(self) -> list[Body]:
        return [r.body for r in self.requests if r.path == "/v1/chat/completions"]

    def _enqueue(self, entry: _Entry) -> None:
        with self._lock:
            self._queue.append(entry)

    def _take(self, items: list[_Waiting], body: Body) -> _Waiting | None:
        with self._lock:
            for item in items:
                if item.match is None or _matches(item.match, body):
                    items.remove(item)
                    return item
        return None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fake-openai", daemon=True
        )
        self._thread.start()
        self._call(self._open())
        return self

    def stop(self) -> None:
        """Stop serving; raise what went wrong inside the server (e.g. a responder bug)."""
        if self._loop is None or self._thread is None:
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._loop = self._thread = None
        if self._failures:
            raise self._failures[0]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _open(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self._port, backlog=1024, limit=2**20
        )
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        await asyncio.sleep(0)  # let connections accepted just now register themselves
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections)
        await self._server.wait_closed()
        await asyncio.sleep(0)  # let the closed transports release their sockets

    # -- HTTP ------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while request := await _read_request(reader, writer):
                status, payload = await self._respond(request)
                writer.write(_encode_response(status, payload, request.keep_alive))
                await writer.drain()
                if not request.keep_alive:
                    break
        # Swallowing the cancel from stop(): Python 3.11's start_server callback calls
        # task.exception() on a cancelled handler and logs a traceback.
        except (
            ConnectionError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            asyncio.CancelledError,
        ):
            pass  # the client left, spoke garbage, or the server is stopping
        finally:
            self._connections.discard(task)
            writer.close()

    async def _respond(self, request: _Request) -> tuple[int, Body | Raw]:
        try:
            body = _parse_body(request)
        except ValueError as exc:
            return _error_response(Error(400, f"could not parse the request body: {exc}"))
        if self._record:
            self.requests.append(Recorded(request.method, request.path, request.headers, body))
        route = (request.method, request.path)
        try:
            if route == ("POST", "/v1/chat/completions"):
                return await self._chat(body)
            if route == ("POST", "/v1/audio/transcriptions"):
                return await self._transcription()
            if route == ("POST", "/v1/embeddings"):
                return self._embeddings(body)
            if route == ("GET", "/v1/models"):
                if self.models_raw is not None:
                    return self.models_raw.status, self.models_raw
                return 200, {"object": "list", "data": [_model(m) for m in self.models]}
        except Exception as exc:  # a responder bug: answer, and raise it from stop()
            self._failures.append(exc)
            return _error_response(Error(500, f"the fake server failed: {exc!r}"))
        return _error_response(Error(404, f"Unknown request URL: {request.method} {request.path}."))

    async def _chat(self, body: Body) -> tuple[int, Body | Raw]:
        if body.get("stream"):
            return _error_response(Error(400, "the fake OpenAI server does not stream"))
        if gate := self._take(self._gates, body):
            await gate._pass()
        entry = self._take(self._queue, body)
        delay = self.latency + (entry.delay if entry else 0.0)
        if delay:
            await asyncio.sleep(delay)
        scripted = entry.response if entry else None
        response = self._unscripted(body) if scripted is None else scripted
        if isinstance(response, Error):
            return _error_response(response)
        if isinstance(response, Raw):
            return response.status, response
        return 200, self._completion(body, response)

    def _unscripted(self, body: Body) -> Scripted:
        if self.responder is None:
            return Reply("OK: " + _last_user_text(body)[:200])
        response = self.responder(body)
        return Reply(response) if isinstance(response, str) else response

    def _completion(self, body: Body, response: Reply | ToolCalls) -> Body:
        message: Body = {"role": "assistant", "content": None, "refusal": None}
        if isinstance(response, Reply):
            message["content"], finish_reason = response.text, "stop"
        else:
            message["tool_calls"] = [self._tool_call(call) for call in response.calls]
            finish_reason = "tool_calls"
        prompt, completion = response.usage
        return {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake-model"),
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    def _tool_call(self, call: ToolCall) -> Body:
        arguments = (
            call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        )
        return {
            "id": f"call_fake{next(self._ids)}",
            "type": "function",
            "function": {"name": call.name, "arguments": arguments},
        }

    def _embeddings(self, body: Body) -> tuple[int, Body]:
        if self.embeddings_error is not None:
            return _error_response(self.embeddings_error)
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return _error_response(Error(400, "input must be a string or a list of strings"))
        data = [{"object": "embedding", "index": i, "embedding": self.embed(t)}
                for i, t in enumerate(texts)]
        tokens = sum(len(t.split()) for t in texts)
        return 200, {"object": "list", "data": data, "model": body.get("model", ""),
                     "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    async def _transcription(self) -> tuple[int, Body]:
        if self.latency:
            await asyncio.sleep(self.latency)
        if isinstance(self.transcript, Error):
            return _error_response(self.transcript)
        return 200, {"text": self.transcript}


def _hashed_words(text: str, dims: int = 64) -> list[float]:
    """A deterministic stand-in for an embedding: words hashed into `dims` buckets."""
    vector = [0.0] * dims
    for word in re.findall(r"\w+", text.lower()):
        vector[sum(word.encode()) % dims] += 1.0
    return vector


# -- the wire ---------------------------------------------------------------------------------


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> _Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed the connection between requests
    request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    method, target, version = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    connection = headers.get("connection", "").lower()
    keep_alive = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
    raw = await _read_body(reader, headers)
    return _Request(method, target.partition("?")[0], headers, raw, keep_alive)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" not in headers.get("transfer-encoding", "").lower():
        return await reader.readexactly(int(headers.get("content-length", "0")))
    chunks = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass  # trailers
    return b"".join(chunks)


def _encode_response(status: int, payload: Body | Raw, keep_alive: bool) -> bytes:
    if isinstance(payload, Raw):
        body, content_type = payload.body, payload.content_type
    else:
        body, content_type = json.dumps(payload).encode(), "application/json"
    head = (
        f"HTTP/1.1 {status} {responses.get(status, '')}\r\n"
        f"content-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\n"
        f"connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode() + body


def _parse_body(request: _Request) -> Body:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return _parse_form(request.raw, content_type)
    if not request.raw:
        return {}
    body = json.loads(request.raw)
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    return body


def _parse_form(raw: bytes, content_type: str) -> Body:
    boundary = content_type.partition("boundary=")[2].strip('"').encode()
    fields: Body = {}
    for part in raw.split(b"--" + boundary)[1:-1]:
        head, _, data = part[2:-2].partition(b"\r\n\r\n")  # each part is framed by CRLFs
        params = dict(re.findall(r'(\w+)="([^"]*)"', head.decode()))
        part_type = re.search(r"(?im)^content-type:\s*(\S+)", head.decode())
        if "filename" in params:
            media = part_type.group(1) if part_type else "application/octet-stream"
            fields[params["name"]] = Upload(params["filename"], media, data)
        else:
            fields[params["name"]] = data.decode()
    return fields


def _error_response(error: Error) -> tuple[int, Body]:
    kind = _ERROR_TYPES.get(error.status, "server_error")
    return error.status, {
        "error": {"message": error.message, "type": kind, "param": None, "code": None}
    }


def _model(model_id: str) -> Body:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "fake"}


def _matches(match: Match, body: Body) -> bool:
    if isinstance(match, str):
        return any(match in _text(m.get("content")) for m in body.get("messages", []))
    return match(body)


def _last_user_text(body: Body) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return _text(users[-1].get("content")) if users else ""


def _text(content: Any) -> str:
    """A message's text, whether its content is a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


# -- pytest and standalone ---------------------------------------------------------------------


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the fake OpenAI API on 127.0.0.1.")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per completion")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    # Not recording: a benchmark sends hundreds of thousands of requests.
    with FakeOpenAI(latency=args.latency, port=args.port, record=False) as server:
        print(f"READY {server.base_url}", flush=True)
        stopping.wait()


if __name__ == "__main__":
    main()
