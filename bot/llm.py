"""The language model: chat completions with tools over any OpenAI-compatible endpoint.

The openai SDK is the client; the chat call itself is posted by `ChatEndpoint` (see there).
"""

from __future__ import annotations

import json
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import openai
from loguru import logger
from openai import AsyncOpenAI

from bot.chat_endpoint import ChatEndpoint, EndpointError


class LLMError(RuntimeError):
    """The model could not answer (timeout, HTTP error, refusal); the turn fails gracefully."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str = ""


@dataclass(slots=True)
class Completion:
    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0


@dataclass(slots=True)
class CallLog:
    """The model calls made while it is current (`CALL_LOG`): the run log of one turn."""

    calls: list[dict[str, Any]] = field(default_factory=list)


# Set by whoever wants the calls of a piece of work recorded (the agent, for a turn).
CALL_LOG: ContextVar[CallLog | None] = ContextVar("wabot_call_log", default=None)


def _record(log: CallLog, kwargs: dict[str, Any], started: float,
            completion: Completion | None, error: str = "") -> None:
    log.calls.append({
        "model": kwargs["model"],
        "messages": list(kwargs["messages"]),  # the caller appends to its list afterwards
        "tools": [t["function"]["name"] for t in kwargs.get("tools", [])],
        "reply": completion.text if completion else "",
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.raw_arguments}
                       for c in completion.tool_calls] if completion else [],
        "tokens_in": completion.tokens_in if completion else 0,
        "tokens_out": completion.tokens_out if completion else 0,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        "error": error,
    })


class LLM:
    """One AsyncOpenAI client for the daemon: real timeout, bounded retries."""

    def __init__(self, client: AsyncOpenAI, model: str, *, temperature: float = 0.6,
                 max_tokens: int = 600, endpoint: ChatEndpoint | None = None) -> None:
        self.client = client
        self.endpoint = endpoint or ChatEndpoint(client)
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        # The tool definitions as sent: the same list goes with every turn (`ToolBox.specs`),
        # and its JSON was two thirds of each request's body to encode.
        self._tools_sent: tuple[list[dict[str, Any]], bytes] | None = None

    @classmethod
    def from_settings(cls, *, api_key: str | None, base_url: str | None, model: str,
                      timeout: float, max_retries: int, temperature: float,
                      max_tokens: int) -> LLM:
        # Local servers (Ollama, vLLM) accept any key; the SDK insists on one being set.
        # aiohttp under the SDK too (its `aiohttp` extra), for what goes through it
        # (transcriptions, embeddings): httpx's pool probes every idle connection on each
        # request, which at a few hundred calls in flight cost 3 ms of CPU per call against
        # 1 ms (tests/bench/bench_llm_client.py).
        client = AsyncOpenAI(api_key=api_key or "not-needed", base_url=base_url,
                             timeout=timeout, max_retries=max_retries,
                             http_client=openai.DefaultAioHttpClient())
        return cls(client, model, temperature=temperature, max_tokens=max_tokens)

    def using(self, model: str, *, temperature: float, max_tokens: int) -> LLM:
        """Another model or other sampling on the same client and connections."""
        return LLM(self.client, model, temperature=temperature, max_tokens=max_tokens,
                   endpoint=self.endpoint)

    async def complete(self, messages: list[dict[str, Any]],
                       tools: list[dict[str, Any]] | None = None, *,
                       model: str | None = None,
                       response_format: dict[str, Any] | None = None) -> Completion:
        kwargs: dict[str, Any] = {
            "model": model or self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if tools:
            kwargs["tools"] = tools
        if response_format:
            kwargs["response_format"] = response_format
        log, started = CALL_LOG.get(), time.perf_counter()
        try:
            completion = await self._create(kwargs)
            if not completion.text and not completion.tool_calls:
                # An empty answer ghosts the customer: ask once more, then it is a failure.
                logger.warning("the model answered nothing; asking once more")
                empty, completion = completion, await self._create(kwargs)
                completion.tokens_in += empty.tokens_in
                completion.tokens_out += empty.tokens_out
                if not completion.text and not completion.tool_calls:
                    raise LLMError("the model answered nothing")
        except LLMError as exc:
            if log is not None:
                _record(log, kwargs, started, None, str(exc))
            raise
        if log is not None:
            _record(log, kwargs, started, completion)
        return completion

    async def _create(self, kwargs: dict[str, Any]) -> Completion:
        try:
            # The answer comes back as bytes, read once into plain dicts: the SDK's response
            # models cost more than the JSON itself (issue #23). The body goes as the bytes
            # it is, the tools' part encoded once (`_body`).
            raw = await self.endpoint.post(self._body(kwargs))
        except EndpointError as exc:
            raise LLMError(str(exc)) from exc
        except Exception as exc:  # the client itself failed: say how (no secret in it)
            raise LLMError(f"the model request failed: {type(exc).__name__}: "
                           f"{str(exc)[:200]}") from exc
        completion = parse_completion_body(raw)
        if not completion.tokens_in and not completion.tokens_out:
            estimate_usage(completion, kwargs)
        return completion

    def _body(self, kwargs: dict[str, Any]) -> bytes:
        """The request's JSON, as the SDK would write it (compact, UTF-8, no NaN)."""
        tools = kwargs.get("tools")
        rest = {k: v for k, v in kwargs.items() if k != "tools"} if tools else kwargs
        head = json.dumps(rest, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode()
        if not tools:
            return head
        sent = self._tools_sent
        if sent is None or sent[0] is not tools:
            sent = self._tools_sent = (tools, json.dumps(
                tools, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode())
        return head[:-1] + b',"tools":' + sent[1] + b"}"

    async def transcribe(self, audio: bytes, filename: str, model: str) -> str:
        try:
            result = await self.client.audio.transcriptions.create(
                model=model, file=(filename, audio))
        except openai.APIError as exc:
            raise LLMError(f"transcription failed: {type(exc).__name__}") from exc
        return result.text.strip()

    async def close(self) -> None:
        await self.endpoint.close()
        await self.client.close()


def parse_completion(resp: Any) -> Completion:
    """Read a chat completion, or raise LLMError for anything that is not one.

    The SDK hands back the body as a plain string when an endpoint answers HTTP 200 with
    HTML, and builds its models without validation: any field may be missing or of the
    wrong type.
    """
    try:
        choices = resp.choices
        if not choices:
            raise LLMError("the model returned no choices")
        msg = choices[0].message
        content = msg.content
        if content is not None and not isinstance(content, str):
            raise TypeError(f"content is {type(content).__name__}")
        usage = resp.usage
        return Completion(
            text=(content or "").strip(),
            tool_calls=[_tool_call(c) for c in (msg.tool_calls or []) if c.type == "function"],
            tokens_in=int(usage.prompt_tokens or 0) if usage else 0,
            tokens_out=int(usage.completion_tokens or 0) if usage else 0,
        )
    except LLMError:
        raise
    except Exception as exc:
        raise LLMError(f"the model endpoint sent a malformed answer: "
                       f"{type(exc).__name__}") from exc


def parse_completion_body(raw: bytes) -> Completion:
    """`parse_completion` for the raw body: JSON read once, no SDK models."""
    try:
        data = json.loads(raw)
        choices = data["choices"]
        if not choices:
            raise LLMError("the model returned no choices")
        msg = choices[0]["message"]
        content = msg.get("content")
        if content is not None and not isinstance(content, str):
            raise TypeError(f"content is {type(content).__name__}")
        usage = data.get("usage") or {}
        return Completion(
            text=(content or "").strip(),
            tool_calls=[_tool_call_of(c) for c in (msg.get("tool_calls") or [])
                        if c.get("type") == "function"],
            tokens_in=int(usage.get("prompt_tokens") or 0),
            tokens_out=int(usage.get("completion_tokens") or 0),
        )
    except LLMError:
        raise
    except Exception as exc:  # not JSON, not an object, a field missing or mistyped
        raise LLMError(f"the model endpoint sent a malformed answer: "
                       f"{type(exc).__name__}") from exc


def _tool_call_of(call: dict[str, Any]) -> ToolCall:
    function = call["function"]
    raw = function.get("arguments") or "{}"
    try:
        args = json.loads(raw)
    except json.JSONDecodeError:
        logger.warning("tool call {} had arguments that are not JSON", function["name"])
        args = None
    return ToolCall(id=str(call["id"]), name=str(function["name"]),
                    arguments=args if isinstance(args, dict) else {}, raw_arguments=raw)


def estimate_usage(completion: Completion, kwargs: dict[str, Any]) -> None:
    """Some servers report no usage: the daily cap must still count something (issue
    #16.3), so estimate it like the prompt budget does, tool definitions included (they
    are sent with every request and cost as much as a long message)."""
    sent = json.dumps(kwargs["messages"]) + json.dumps(kwargs.get("tools") or [])
    completion.tokens_in = len(sent) // 3 + 4
    answer = completion.text + "".join(c.raw_arguments for c in completion.tool_calls)
    completion.tokens_out = len(answer) // 3 + 4


def _tool_call(call: Any) -> ToolCall:
    raw = call.function.arguments or "{}"
    try:
        args = json.loads(raw)
    except json.JSONDecodeError:
        logger.warning("tool call {} had arguments that are not JSON", call.function.name)
        args = None
    return ToolCall(id=call.id, name=call.function.name,
                    arguments=args if isinstance(args, dict) else {}, raw_arguments=raw)
