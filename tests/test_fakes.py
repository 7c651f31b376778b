"""The test doubles at the edges: the fake OpenAI server, driven by the real openai client,
and the network guard."""

from __future__ import annotations

import asyncio
import json
import re
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from pydantic import BaseModel

from tests.fakes.netguard import NetworkAccessError, NetworkGuard, is_loopback
from tests.fakes.openai_server import Error, FakeOpenAI, Reply, ToolCalls, Upload

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def client(openai_server: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=openai_server.base_url, api_key="test", max_retries=0) as c:
        yield c


async def ask(client: AsyncOpenAI, text: str, **kwargs: Any) -> str | None:
    completion = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], **kwargs
    )
    content: str | None = completion.choices[0].message.content
    return content


# -- the fake OpenAI server -------------------------------------------------------------------


async def test_text_reply_is_parsed(openai_server: FakeOpenAI, client: AsyncOpenAI) -> None:
    openai_server.reply("Hello there", usage=(12, 3))

    completion = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )

    choice = completion.choices[0]
    assert (choice.message.content, choice.finish_reason) == ("Hello there", "stop")
    assert completion.model == "gpt-4o-mini"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.total_tokens) == (12, 15)


async def test_unscripted_reply_echoes_the_last_user_message(client: AsyncOpenAI) -> None:
    assert await ask(client, "x" * 300) == "OK: " + "x" * 200


async def test_tool_calls_are_parsed(openai_server: FakeOpenAI, client: AsyncOpenAI) -> None:
    openai_server.tool_call("book", {"at": "10:00"}, ("notify", '{"broken'))

    completion = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "book me in"}]
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("book", json.dumps({"at": "10:00"})),
        ("notify", '{"broken'),
    ]
    assert calls[0].id.startswith("call_") and calls[0].id != calls[1].id


async def test_structured_output_returns_the_scripted_json(
    openai_server: FakeOpenAI, client: AsyncOpenAI
) -> None:
    class Summary(BaseModel):
        summary: str

    openai_server.reply({"summary": "likes tea"})

    completion = await client.chat.completions.parse(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "summarize"}],
        response_format=Summary,
    )

    assert completion.choices[0].message.parsed == Summary(summary="likes tea")
    assert openai_server.chat_requests()[0]["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (500, openai.InternalServerError),
        (429, openai.RateLimitError),
        (400, openai.BadRequestError),
    ],
)
async def test_scripted_errors_raise_the_client_exception(
    openai_server: FakeOpenAI, client: AsyncOpenAI, status: int, exception: type[Exception]
) -> None:
    openai_server.error(status, "scripted failure")

    with pytest.raises(exception, match="scripted failure"):
        await ask(client, "hi")


async def test_streaming_is_refused(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="does not stream"):
        await ask(client, "hi", stream=True)


async def test_unknown_endpoint_is_not_found(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="Unknown request URL"):
        await client.moderations.create(input="hi")


async def test_embeddings_answer_one_vector_per_input_in_order(
    openai_server: FakeOpenAI, client: AsyncOpenAI
) -> None:
    openai_server.embed = lambda text: [float(len(text)), 1.0]
    resp = await client.embeddings.create(model="embed-small", input=["a", "abc"])
    assert [d.embedding for d in resp.data] == [[1.0, 1.0], [3.0, 1.0]]
    openai_server.embeddings_error = Error(503, "embeddings down")
    with pytest.raises(openai.InternalServerError, match="embeddings down"):
        await client.embeddings.create(model="embed-small", input="a")


async def test_hang_beyond_the_client_timeout_times_out(
    openai_server: FakeOpenAI, client: AsyncOpenAI
) -> None:
    openai_server.hang(30)

    with pytest.raises(openai.APITimeoutError):
        await ask(client.with_options(timeout=0.2), "hi")


async def test_transcription_returns_the_transcript(
    openai_server: FakeOpenAI, client: AsyncOpenAI
) -> None:
    openai_server.transcript = "book me for ten"

    result = await client.audio.transcriptions.create(
        model="whisper-1", file=("voice.ogg", b"OggS\x00\xff", "audio/ogg")
    )

    assert result.text == "book me for ten"
    form = openai_server.requests[-1].body
    assert form == {"model": "whisper-1", "file": Upload("voice.ogg", "audio/ogg", b"OggS\x00\xff")}


async def test_transcription_error(openai_server: FakeOpenAI, client: AsyncOpenAI) -> None:
    openai_server.transcript = Error(500, "whisper is down")

    with pytest.raises(openai.InternalServerError, match="whisper is down"):
        await client.audio.transcriptions.create(model="whisper-1", file=("a.ogg", b"x"))


async def test_models_are_listed(client: AsyncOpenAI) -> None:
    models = await client.models.list()

    assert [m.id for m in models.data] == ["gpt-4o-mini", "fake-model"]


async def test_latency_is_added_and_requests_overlap(
    openai_server: FakeOpenAI, client: AsyncOpenAI
) -> None:
    openai_server.latency = 0.3
    started = time.monotonic()

    replies = await asyncio.gather(*(ask(client, f"m{i}") for i in range(50)))

    elapsed = time.monotonic() - started
    assert replies == [f"OK: m{i}" for i in range(50)]
    assert 0.3 <= elapsed < 1.5  # 50 sequential requests would take 15 s


async def test_held_request_waits_while_others_are_answered(
    openai_server: FakeOpenAI, client: AsyncOpenAI
) -> None:
    gate = openai_server.hold(match="Summarize")
    summary = asyncio.create_task(ask(client, "Summarize the chat"))
    await gate.wait_arrived()

    assert await ask(client, "hello") == "OK: hello"
    assert not summary.done()

    openai_server.reply("a summary")  # queued while the held request is in flight
    gate.release()
    assert await summary == "a summary"


async def test_requests_are_recorded(openai_server: FakeOpenAI, client: AsyncOpenAI) -> None:
    await ask(client, "hi")
    await client.models.list()

    chat, models = openai_server.requests
    assert (chat.method, chat.path, models.path) == ("POST", "/v1/chat/completions", "/v1/models")
    assert chat.headers["authorization"] == "Bearer test"
    assert openai_server.chat_requests() == [
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    ]


async def test_match_routes_queued_responses(
    openai_server: FakeOpenAI, client: AsyncOpenAI
) -> None:
    openai_server.reply("the summary", match="Summarize")
    openai_server.reply("the tool answer", match=lambda body: "tools" in body)
    openai_server.reply("the chat reply")

    assert await ask(client, "hello") == "the chat reply"
    assert await ask(client, "again") == "OK: again"
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert await ask(client, "use a tool", tools=tools) == "the tool answer"
    assert await ask(client, "Summarize this") == "the summary"
    assert openai_server.pending == 0


async def test_responder_answers_when_nothing_is_queued(
    openai_server: FakeOpenAI, client: AsyncOpenAI
) -> None:
    def responder(body: dict[str, object]) -> Reply | ToolCalls | Error | str:
        return Error(503, "overloaded") if body.get("user") == "busy" else "from the responder"

    openai_server.responder = responder

    assert await ask(client, "hi") == "from the responder"
    with pytest.raises(openai.InternalServerError, match="overloaded"):
        await ask(client, "hi", user="busy")


async def test_a_failing_responder_fails_the_test_on_stop() -> None:
    def responder(body: dict[str, object]) -> str:
        raise ZeroDivisionError("responder bug")

    server = FakeOpenAI().start()
    server.responder = responder
    try:
        async with AsyncOpenAI(base_url=server.base_url, api_key="t", max_retries=0) as client:
            with pytest.raises(openai.InternalServerError):
                await ask(client, "hi")
    finally:
        with pytest.raises(ZeroDivisionError, match="responder bug"):
            server.stop()


async def test_chunked_request_bodies_are_read(openai_server: FakeOpenAI) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"model": "m", "messages": [{"role": "user", '
        yield b'"content": "in pieces"}]}'

    async with httpx.AsyncClient() as http:
        response = await http.post(f"{openai_server.base_url}/chat/completions", content=chunks())

    assert response.json()["choices"][0]["message"]["content"] == "OK: in pieces"
    assert openai_server.requests[0].headers["transfer-encoding"] == "chunked"


@pytest.fixture
def standalone() -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--latency", "0.01"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()
    assert process.stdout is not None
    process.stdout.close()


def test_standalone_mode_serves_until_sigterm(standalone: subprocess.Popen[str]) -> None:
    assert standalone.stdout is not None
    ready, _, _ = select.select([standalone.stdout], [], [], 10)
    assert ready, "the standalone server never printed READY"
    word, base_url = standalone.stdout.readline().split()
    assert word == "READY"

    with openai.OpenAI(base_url=base_url, api_key="test", max_retries=0) as client:
        completion = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "ping"}]
        )
    assert completion.choices[0].message.content == "OK: ping"

    standalone.send_signal(signal.SIGTERM)
    assert standalone.wait(timeout=10) == 0


# -- the network guard ------------------------------------------------------------------------

OUTSIDE = ("93.184.216.34", 80)


def test_plain_socket_connect_is_refused(network_guard: NetworkGuard) -> None:
    with socket.socket() as sock:
        sock.settimeout(1)  # if the guard were broken, don't wait long to find out
        refused = re.escape("test tried to reach the network: 93.184.216.34:80")
        with pytest.raises(NetworkAccessError, match=refused):
            sock.connect(OUTSIDE)
        with pytest.raises(NetworkAccessError):
            sock.connect_ex(OUTSIDE)

    assert network_guard.take_attempts() == ["93.184.216.34:80"] * 2


def test_name_lookups_are_refused(network_guard: NetworkGuard) -> None:
    with pytest.raises(NetworkAccessError, match=re.escape("example.com:443")):
        socket.getaddrinfo("example.com", 443)
    with pytest.raises(NetworkAccessError, match=re.escape("example.com:443")):
        socket.create_connection(("example.com", 443), timeout=1)

    assert socket.getaddrinfo("localhost", 80)
    assert network_guard.take_attempts() == ["example.com:443"] * 2


async def test_asyncio_connections_are_refused(network_guard: NetworkGuard) -> None:
    with pytest.raises(NetworkAccessError):
        await asyncio.open_connection("example.com", 80)
    with pytest.raises(NetworkAccessError):
        await asyncio.open_connection(*OUTSIDE)

    assert network_guard.take_attempts() == ["example.com:80", "93.184.216.34:80"]


async def test_an_attempt_the_client_swallows_is_still_recorded(
    network_guard: NetworkGuard,
) -> None:
    async with AsyncOpenAI(api_key="test", max_retries=0) as client:
        with pytest.raises(openai.APIConnectionError):
            await ask(client, "hi")

    assert network_guard.take_attempts() == ["api.openai.com:443"]


GUARDED_TESTS = """
import socket
import pytest
from tests.fakes.netguard import network_guard

def test_swallows_the_error():
    try:
        socket.create_connection(("93.184.216.34", 80), timeout=1)
    except OSError:
        pass

@pytest.mark.allow_network
def test_opted_out(network_guard):
    assert network_guard is None
"""


def test_a_swallowed_attempt_fails_the_test_in_teardown(tmp_path: Path) -> None:
    (tmp_path / "test_guarded.py").write_text(GUARDED_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers = allow_network: may connect\n")

    pytest_args = ["-p", "no:cacheprovider", "-p", "no:asyncio", "-c", str(tmp_path / "pytest.ini")]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *pytest_args, tmp_path / "test_guarded.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert "2 passed, 1 error" in run.stdout, run.stdout  # the error: teardown
    assert "ERROR at teardown of test_swallows_the_error" in run.stdout
    assert "(even if the error was caught): 93.184.216.34:80" in run.stdout


def test_loopback_and_unix_sockets_are_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=1):
            pass

    name = f"\0wabot-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(name)
        server.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(name)


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST.", "127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", None]
)
def test_loopback_hosts(host: str | None) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["93.184.216.34", "10.0.0.1", "0.0.0.0", "example.com", "::ffff:8.8.8.8", "", "::"]
)
def test_non_loopback_hosts(host: str) -> None:
    assert not is_loopback(host)
