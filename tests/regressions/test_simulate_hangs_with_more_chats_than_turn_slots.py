"""`wabot simulate` hung for good when more chats were ready than `max_concurrent_turns`:
the virtual clock waited for every task to be done or asleep on it, and a chat waiting for
a turn slot (while the slot holders slept through their typing delays) was neither."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime

from bot.cli.simulate import simulate
from tests.fakes.pipeline import make_settings

START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def scenario(customers: int, seconds: float) -> list[str]:
    step = seconds / customers
    return [json.dumps({"op": "message", "at": round(i * step, 3), "from": f"+1555{i:07d}",
                        "name": "Ana", "text": f"hola, soy el cliente {i}"})
            for i in range(customers)]


async def replay(settings, lines: list[str]) -> list[dict]:
    out = io.StringIO()
    # A guard, not a wait: without the fix this never returns.
    await asyncio.wait_for(simulate(settings, lines, out, start=START), timeout=600)
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_more_ready_chats_than_turn_slots_all_get_answered(tmp_path, openai_server, tenant):
    settings = make_settings(f"sqlite:///{tmp_path / 'w.db'}", tmp_path, openai_server, tenant,
                             inbox={"max_concurrent_turns": 2})
    records = await replay(settings, scenario(12, 1.0))
    answered = {r["to"] for r in records if r.get("kind") == "reply"}
    assert answered == {f"+1555{i:07d}" for i in range(12)}


async def test_simulate_of_2000_customers_in_one_minute_finishes_and_answers_all(
        tmp_path, openai_server, tenant):
    settings = make_settings(f"sqlite:///{tmp_path / 'w.db'}", tmp_path, openai_server, tenant)
    assert settings.inbox.max_concurrent_turns < 2000
    records = await replay(settings, scenario(2000, 60.0))
    answered = {r["to"] for r in records if r.get("kind") == "reply"}
    assert len(answered) == 2000
    assert {r["customer"] for r in records if r.get("event") == "agent_created"} == answered
