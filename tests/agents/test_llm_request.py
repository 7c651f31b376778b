"""What the model endpoint receives: the SDK's request, with the body written by wabot (the
tool definitions encoded once, not once a turn)."""

from __future__ import annotations

from typing import Any

from bot.llm import LLM

TOOLS: list[dict[str, Any]] = [{"type": "function", "function": {
    "name": "remember_fact", "description": "Guarda un dato del cliente (número, ñandú).",
    "parameters": {"type": "object", "properties": {"key": {"type": "string"}},
                   "required": ["key"]}}}]


def _llm(openai_server: Any) -> LLM:
    return LLM.from_settings(api_key="test", base_url=openai_server.base_url, model="m-1",
                             timeout=5, max_retries=0, temperature=0.3, max_tokens=77)


async def test_the_request_is_what_the_sdk_would_send(openai_server):
    llm = _llm(openai_server)
    messages = [{"role": "system", "content": "Eres la tienda 🛍️"},
                {"role": "user", "content": "¿tienen envíos?\u2028"}]
    try:
        openai_server.reply("Sí")
        assert (await llm.complete(messages, TOOLS)).text == "Sí"
        openai_server.reply("Claro")
        assert (await llm.complete(messages)).text == "Claro"  # no tools offered
    finally:
        await llm.close()
    with_tools, without = openai_server.requests[-2:]
    assert with_tools.body == {"model": "m-1", "messages": messages, "temperature": 0.3,
                               "max_tokens": 77, "tools": TOOLS}
    assert without.body == {"model": "m-1", "messages": messages, "temperature": 0.3,
                            "max_tokens": 77}
    assert with_tools.headers["content-type"] == "application/json"
    assert with_tools.headers["authorization"] == "Bearer test"


async def test_other_tools_are_sent_as_they_are_now(openai_server):
    llm = _llm(openai_server)
    messages = [{"role": "user", "content": "hola"}]
    other = [{**TOOLS[0], "function": {**TOOLS[0]["function"], "name": "set_stage"}}]
    try:
        for tools in (TOOLS, other, TOOLS):
            openai_server.reply("ok")
            await llm.complete(messages, tools)
    finally:
        await llm.close()
    sent = [r.body["tools"][0]["function"]["name"] for r in openai_server.requests[-3:]]
    assert sent == ["remember_fact", "set_stage", "remember_fact"]
