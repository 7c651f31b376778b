"""The peers' side of `bench_memory_store.py`, run in the benchmark's own environment
(the peers are never wabot dependencies):

    python3 -m venv /tmp/peer-venv
    /tmp/peer-venv/bin/pip install openai-agents langgraph langgraph-checkpoint-sqlite aiosqlite
    /tmp/peer-venv/bin/python tests/bench/peers_memory.py DIR CUSTOMERS TURNS

Prints one JSON line per peer: turns, wall seconds, CPU seconds (process time).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any


async def timed(name: str, customers: int, turns: int, run: Any) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    await run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"name": name, "turns": customers * turns, "wall": wall, "cpu": cpu}),
          flush=True)


async def agents_sdk(db: Path, customers: int, turns: int) -> None:
    from agents.memory import SQLiteSession

    sessions = [SQLiteSession(f"c{i}", db) for i in range(customers)]

    async def one(i: int) -> None:
        s = sessions[i]
        for t in range(turns):
            await s.add_items([{"role": "user", "content": f"message {t} from customer {i}"},
                               {"role": "assistant", "content": f"answer {t} to customer {i}"}])
            await s.get_items(limit=20)

    async def run() -> None:
        await asyncio.gather(*(one(i) for i in range(customers)))

    await timed("OpenAI Agents SDK SQLiteSession", customers, turns, run)
    for s in sessions:
        s.close()


async def langgraph(db: Path, customers: int, turns: int) -> None:
    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from langgraph.graph import START, MessagesState, StateGraph

    def reply(state: MessagesState) -> dict[str, Any]:
        recent = state["messages"][-20:]  # what a prompt would read
        return {"messages": [AIMessage(f"answer to {recent[-1].content}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", reply)
    builder.add_edge(START, "agent")
    async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
        graph = builder.compile(checkpointer=saver)

        async def one(i: int) -> None:
            config = {"configurable": {"thread_id": f"c{i}"}}
            for t in range(turns):
                await graph.ainvoke({"messages": [HumanMessage(f"message {t} from customer {i}")]},
                                    config)

        async def run() -> None:
            await asyncio.gather(*(one(i) for i in range(customers)))

        await timed("LangGraph AsyncSqliteSaver (MessagesState)", customers, turns, run)


async def main() -> None:
    folder, customers, turns = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    await agents_sdk(folder / "agents-sdk.db", customers, turns)
    await langgraph(folder / "langgraph.db", customers, turns)


if __name__ == "__main__":
    asyncio.run(main())
