"""`wabot simulate` hung for good when more chats were ready than `max_concurrent_turns`:
the virtual clock waited for every task to be done or asleep on it, and a chat waiting for
a turn slot (while the slot holders slept through their typing delays) was neither.

The scenario at full size (2,000 customers in a minute, 64 turn slots) is
`python -m tests.bench.bench_simulate`.
"""

from __future__ import annotations

from tests.bench.bench_simulate import replay, scenario
from tests.fakes.pipeline import make_settings


async def test_more_ready_chats_than_turn_slots_all_get_answered(tmp_path, openai_server, tenant):
    settings = make_settings(f"sqlite:///{tmp_path / 'w.db'}", tmp_path, openai_server, tenant,
                             inbox={"max_concurrent_turns": 2})
    records = await replay(settings, scenario(12, 1.0))
    answered = {r["to"] for r in records if r.get("kind") == "reply"}
    assert answered == {f"+1555{i:07d}" for i in range(12)}


async def test_simulate_of_a_minute_of_new_customers_finishes_and_answers_all(
        tmp_path, openai_server, tenant):
    # 2,000 customers for 64 turn slots in the benchmark; here 100 for 4 (about as many
    # customers per slot), with the default presentation delays.
    settings = make_settings(f"sqlite:///{tmp_path / 'w.db'}", tmp_path, openai_server, tenant,
                             inbox={"max_concurrent_turns": 4})
    records = await replay(settings, scenario(100, 60.0))
    answered = {r["to"] for r in records if r.get("kind") == "reply"}
    assert len(answered) == 100
    assert {r["customer"] for r in records if r.get("event") == "agent_created"} == answered
