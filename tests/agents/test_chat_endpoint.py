"""The chat call as wabot posts it (`bot.chat_endpoint`): the SDK's headers, the SDK's retry
rule, timeouts and a proxy, against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI

from bot.llm import LLM, LLMError

MESSAGES = [{"role": "user", "content": "hola"}]
PER_ATTEMPT = {"x-stainless-retry-count", "x-stainless-read-timeout"}  # the SDK counts these


def completion(text: str) -> dict[str, Any]:
    return {"id": "c-1", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}


class Scripted:
    """A model endpoint answering from a script: (status, headers) per request, then 200."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str]]] = []
        self.times: list[float] = []
        self.delay = 0.0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.times.append(time.monotonic())
        await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.script:
            status, headers = self.script.pop(0)
            return web.json_response({"error": {"message": "scripted"}}, status=status,
                                     headers=headers)
        return web.json_response(completion("listo"))


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Scripted, str]]:
    endpoint = Scripted()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", endpoint.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield endpoint, str(server.make_url("/v1"))
    finally:
        await server.close()


def llm_at(url: str, *, retries: int = 2, timeout: float = 5.0) -> LLM:
    return LLM.from_settings(api_key="sk-test", base_url=url, model="m", timeout=timeout,
                             max_retries=retries, temperature=0.2, max_tokens=50)


async def test_the_chat_call_carries_the_headers_the_sdk_sends(openai_server):
    client = AsyncOpenAI(api_key="sk-test", base_url=openai_server.base_url,
                         organization="org-7", default_headers={"X-Shop": "tienda"},
                         max_retries=0)
    llm = LLM(client, "m-1")
    try:
        openai_server.reply("por el SDK")
        await client.chat.completions.create(model="m-1", messages=MESSAGES)  # type: ignore[arg-type]
        openai_server.reply("por wabot")
        assert (await llm.complete(MESSAGES)).text == "por wabot"
    finally:
        await llm.close()
    by_sdk, by_wabot = openai_server.requests[-2:]
    expected = {k: v for k, v in by_sdk.headers.items()
                if k.startswith(("x-", "openai-")) or k in ("authorization", "user-agent",
                                                            "content-type", "accept")}
    assert {k: by_wabot.headers.get(k) for k in expected if k not in PER_ATTEMPT} == {
        k: v for k, v in expected.items() if k not in PER_ATTEMPT}
    assert by_wabot.headers["openai-organization"] == "org-7"
    assert by_wabot.headers["x-shop"] == "tienda"
    assert by_wabot.headers["authorization"] == "Bearer sk-test"
    assert by_wabot.path == by_sdk.path == "/v1/chat/completions"


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503])
async def test_what_the_sdk_retries_is_retried(scripted, status):
    endpoint, url = scripted
    endpoint.script = [(status, {"retry-after-ms": "20"})]
    llm = llm_at(url)
    try:
        assert (await llm.complete(MESSAGES)).text == "listo"
    finally:
        await llm.close()
    assert len(endpoint.times) == 2
    # The server's 20 ms, not the backoff's 0.375 s at least.
    assert 0.015 <= endpoint.times[1] - endpoint.times[0] < 0.3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_a_refusal_is_not_retried(scripted, status):
    endpoint, url = scripted
    endpoint.script = [(status, {})]
    llm = llm_at(url)
    try:
        with pytest.raises(LLMError, match=f"the model endpoint answered HTTP {status}"):
            await llm.complete(MESSAGES)
    finally:
        await llm.close()
    assert len(endpoint.times) == 1


@pytest.mark.parametrize(("status", "headers", "attempts"), [
    (500, {"x-should-retry": "false"}, 1),  # the server's word wins both ways
    (400, {"x-should-retry": "true", "retry-after-ms": "10"}, 2),
    (429, {"retry-after": "121"}, 1),  # more than two minutes: not waited for
])
async def test_the_server_says_whether_to_retry(scripted, status, headers, attempts):
    endpoint, url = scripted
    endpoint.script = [(status, headers)]
    llm = llm_at(url)
    try:
        if attempts == 1:
            with pytest.raises(LLMError, match=f"HTTP {status}"):
                await llm.complete(MESSAGES)
        else:
            assert (await llm.complete(MESSAGES)).text == "listo"
    finally:
        await llm.close()
    assert len(endpoint.times) == attempts


async def test_retries_end_with_the_last_answer(scripted):
    endpoint, url = scripted
    endpoint.script = [(503, {"retry-after-ms": "5"})] * 3
    llm = llm_at(url, retries=2)
    try:
        with pytest.raises(LLMError, match="HTTP 503"):
            await llm.complete(MESSAGES)
    finally:
        await llm.close()
    assert len(endpoint.times) == 3  # the first and two retries


async def test_without_a_server_wait_the_backoff_is_the_sdks(scripted):
    endpoint, url = scripted
    endpoint.script = [(502, {})]
    llm = llm_at(url)
    try:
        assert (await llm.complete(MESSAGES)).text == "listo"
    finally:
        await llm.close()
    assert 0.37 <= endpoint.times[1] - endpoint.times[0] < 1.0  # 0.5 s less up to a quarter


async def test_a_model_that_does_not_answer_in_time(scripted):
    endpoint, url = scripted
    endpoint.delay = 1.0
    llm = llm_at(url, retries=0, timeout=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(LLMError, match="the model did not answer in time"):
            await llm.complete(MESSAGES)
        assert time.monotonic() - started < 0.9
    finally:
        await llm.close()


async def test_an_endpoint_that_is_not_there(unused_tcp_port):
    llm = llm_at(f"http://127.0.0.1:{unused_tcp_port}/v1", retries=0)
    try:
        with pytest.raises(LLMError, match=rf"the model endpoint failed: cannot connect to "
                                           rf"127\.0\.0\.1:{unused_tcp_port}$"):
            await llm.complete(MESSAGES)
    finally:
        await llm.close()


async def test_a_connection_closed_before_the_answer_is_retried_then_said():
    """A server (or a proxy in front of it) that drops the connection mid-request: retried
    like the SDK retries it, then reported in words, not as aiohttp's class name."""
    accepted: list[float] = []

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(time.monotonic())
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    llm = llm_at(f"http://127.0.0.1:{port}/v1", retries=1)
    try:
        with pytest.raises(LLMError, match=r"the model endpoint failed: the connection closed "
                                           r"before the answer$"):
            await llm.complete(MESSAGES)
    finally:
        await llm.close()
        server.close()
        await server.wait_closed()
    assert len(accepted) == 2


async def test_the_proxy_of_the_environment_is_used(monkeypatch):
    seen: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        seen.append(str(request.url))
        return web.json_response(completion("por el proxy"))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    monkeypatch.setenv("HTTP_PROXY", str(server.make_url("")))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    llm = llm_at("http://model.internal.example/v1", retries=0)
    try:
        assert (await llm.complete(MESSAGES)).text == "por el proxy"
    finally:
        await llm.close()
        await server.close()
    assert seen == ["http://model.internal.example/v1/chat/completions"]


async def test_sibling_models_share_the_connections(scripted):
    _, url = scripted
    llm = llm_at(url)
    other = llm.using("summary-model", temperature=0.0, max_tokens=16)
    try:
        await llm.complete(MESSAGES)
        await other.complete(MESSAGES)
        assert other.endpoint is llm.endpoint
    finally:
        await llm.close()
    assert llm.endpoint._session is None  # closed with its owner


async def test_no_proxy_naming_the_endpoint_goes_direct(scripted, monkeypatch, unused_tcp_port):
    endpoint, url = scripted
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{unused_tcp_port}")  # nothing there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    llm = llm_at(url, retries=0)
    try:
        assert (await llm.complete(MESSAGES)).text == "listo"
    finally:
        await llm.close()
    assert len(endpoint.times) == 1
