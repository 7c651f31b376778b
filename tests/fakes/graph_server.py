"""A real HTTP server on 127.0.0.1 speaking Meta's Graph API for WhatsApp, scripted per test.

It serves `POST /{phone_number_id}/messages` (text, templates, media, read receipts with the
typing indicator), `GET /{media_id}` (the media URL) and the download itself, and
`GET /{phone_number_id}`. Every call is recorded; every call needs the bearer token.

    graph.fail(429)                       # the next send is throttled…
    graph.fail(400, code=131047)          # …or refused for good
    graph.media["1001"] = b"..."          # downloadable media (Meta ids are digits)
    graph.latency = 0.05                  # every answer waits this long

It runs uvicorn on its own loop in a daemon thread, so it can serve a `wabot` subprocess.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Self

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PHONE_NUMBER_ID = "106540352242922"
TOKEN = "graph-test-token"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True)
class Failure:
    status: int
    code: int
    message: str
    match: str  # "send" (messages that are not read receipts), "read" or "any"


class FakeGraph:
    def __init__(self, phone_number_id: str = PHONE_NUMBER_ID, token: str = TOKEN,
                 latency: float = 0.0) -> None:
        self.phone_number_id = phone_number_id
        self.numbers = {phone_number_id}  # more: one server for many numbers (density bench)
        self.token = token
        self.latency = latency
        self.calls: list[Call] = []
        self.media: dict[str, bytes] = {}
        self.uploads: dict[str, tuple[str, str]] = {}  # media id → (file name, type)
        self.listeners: list[Callable[[Call], None]] = []
        self._failures: list[Failure] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # --- scripting and inspection ------------------------------------------------------

    def fail(self, status: int, code: int = 0, message: str = "scripted error",
             times: int = 1, match: str = "send") -> None:
        with self._lock:
            self._failures += [Failure(status, code, message, match)] * times

    def sends(self, kind: str | None = None) -> list[Call]:
        """Message sends (not read receipts), optionally of one type (text, template…)."""
        return [c for c in self.calls if c.path.endswith("/messages")
                and "status" not in c.body and (kind is None or c.body.get("type") == kind)]

    def reads(self) -> list[Call]:
        return [c for c in self.calls if c.path.endswith("/messages") and "status" in c.body]

    def texts(self, to: str | None = None) -> list[str]:
        return [c.body["text"]["body"] for c in self.sends("text")
                if to is None or c.body["to"] == to]

    # --- HTTP --------------------------------------------------------------------------

    def _take_failure(self, kind: str) -> Failure | None:
        with self._lock:
            for i, f in enumerate(self._failures):
                if f.match in (kind, "any"):
                    return self._failures.pop(i)
        return None

    async def _record(self, request: Request) -> tuple[Call, Response | None]:
        body: dict[str, Any] = {}
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                body = {}
        call = Call(request.method, request.url.path, dict(request.headers), body)
        with self._lock:
            self.calls.append(call)
        if self.latency:
            await asyncio.sleep(self.latency)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return call, _error(401, 190, "Invalid OAuth access token.")
        return call, None

    async def _messages(self, request: Request) -> Response:
        call, refused = await self._record(request)
        if refused is not None:
            return refused
        if request.path_params["number"] not in self.numbers:
            return _error(400, 100, "Unsupported post request.")
        failure = self._take_failure("read" if "status" in call.body else "send")
        if failure is not None:
            return _error(failure.status, failure.code, failure.message)
        for listener in self.listeners:
            listener(call)
        if "status" in call.body:
            return JSONResponse({"success": True})
        to = str(call.body.get("to", ""))
        return JSONResponse({"messaging_product": "whatsapp",
                             "contacts": [{"input": to, "wa_id": to}],
                             "messages": [{"id": f"wamid.OUT{next(self._ids):06d}"}]})

    async def _upload(self, request: Request) -> Response:
        async with request.form() as form:
            upload = form.get("file")
            fields = {k: v for k, v in form.items() if k != "file"}
            data = b"" if upload is None or isinstance(upload, str) else await upload.read()
            name = "" if upload is None or isinstance(upload, str) else upload.filename or ""
            kind = "" if upload is None or isinstance(upload, str) else upload.content_type
        with self._lock:
            self.calls.append(Call(request.method, request.url.path, dict(request.headers),
                                   fields))
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, 190, "Invalid OAuth access token.")
        if not data:
            return _error(400, 100, "The parameter file is required.")
        media_id = f"UP{next(self._ids):06d}"
        self.media[media_id] = data
        self.uploads[media_id] = (name, kind or "")
        return JSONResponse({"id": media_id})

    async def _node(self, request: Request) -> Response:
        _, refused = await self._record(request)
        if refused is not None:
            return refused
        node = request.path_params["node"]
        if node in self.numbers:
            return JSONResponse({"id": node, "display_phone_number": "+1 555 010 0199",
                                 "verified_name": "Casa Azul", "quality_rating": "GREEN"})
        if node in self.media:
            return JSONResponse({
                "messaging_product": "whatsapp", "id": node, "mime_type": "image/jpeg",
                "file_size": len(self.media[node]), "sha256": "0" * 64,
                "url": f"{self.url}/download/{node}"})
        return _error(404, 100, f"Unsupported get request. Object with ID '{node}' "
                                "does not exist")

    async def _download(self, request: Request) -> Response:
        _, refused = await self._record(request)
        if refused is not None:
            return refused
        data = self.media.get(request.path_params["node"])
        if data is None:
            return Response(status_code=404)
        return Response(data, media_type="image/jpeg")

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        app = Starlette(routes=[
            Route("/v21.0/{number}/messages", self._messages, methods=["POST"]),
            Route("/v21.0/{number}/media", self._upload, methods=["POST"]),
            Route("/download/{node}", self._download, methods=["GET"]),
            Route("/v21.0/{node}", self._node, methods=["GET"]),
        ])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None,
                                              access_log=False, lifespan="off", ws="none"))
        self._thread = threading.Thread(target=self._server.run, name="fake-graph", daemon=True)
        self._thread.start()
        started = threading.Event()
        while not started.wait(0.01):
            if self._server.started:
                started.set()
            elif not self._thread.is_alive():
                raise RuntimeError("the fake Graph server did not start")
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    @property
    def graph_url(self) -> str:
        return f"{self.url}/v21.0"

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _error(status: int, code: int, message: str) -> Response:
    return JSONResponse({"error": {"message": message, "type": "OAuthException", "code": code,
                                   "fbtrace_id": "AbCdEf"}}, status_code=status)


@pytest.fixture
def graph_server() -> Iterator[FakeGraph]:
    with FakeGraph() as graph:
        yield graph
