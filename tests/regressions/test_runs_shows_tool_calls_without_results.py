"""`wabot runs` printed the tool calls of a turn but not what they returned, while the
console's run page showed both: the owner could not see, from a shell, what the agent was
told by a tool before it answered. Each tool call is now followed by its result."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner

from bot.cli import app
from tests.cli.test_web import env, restore_logging  # noqa: F401  (fixtures)
from tests.fakes.pipeline import make_settings, pipeline

ANA = "+5215512345678"


def test_runs_prints_what_each_tool_returned(env, tmp_path, db_url, tenant,  # noqa: F811
                                             openai_server):
    settings = make_settings(db_url, tmp_path / "state", openai_server, tenant,
                             presenter={"enabled": False}, inbox={"debounce_seconds": 0})
    openai_server.tool_call("ask_for_human", {"reason": "refund"})
    openai_server.reply("A person will write to you.")

    async def seed() -> str:
        async with pipeline(settings) as p:
            await p.say(ANA, "I want my money back")
            await p.settle()
        chats = [r for r in openai_server.requests if r.path.endswith("/chat/completions")]
        return next(str(m["content"]) for r in chats for m in r.body["messages"]
                    if m["role"] == "tool")

    returned = asyncio.run(seed())
    result = CliRunner().invoke(app, ["runs", ANA])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = next(i for i, line in enumerate(lines) if "→ tool ask_for_human" in line)
    assert lines[at + 1].strip() == "← " + " ".join(returned.split())[:300]
