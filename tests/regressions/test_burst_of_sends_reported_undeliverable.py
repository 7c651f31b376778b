"""A burst of replies was reported undeliverable (issue #23): with
`inbox.max_concurrent_turns = 1000`, a thousand sends met the Graph client's connection
pool, those waiting for a connection longer than the timeout failed (httpx `PoolTimeout`),
were retried into the same queue and given up. Waiting for a connection is not a delivery
failure: a burst must queue, and every reply go out once."""

from __future__ import annotations

import asyncio
from datetime import datetime

from bot.gateway.cloud.graph import GraphAPI
from bot.settings import CloudSettings
from tests.fakes.graph_server import FakeGraph
from tests.fakes.pipeline import START

SENDS = 1000


class InstantClock:
    """Backoff without waiting: the retries happen, only faster."""

    def now(self) -> datetime:
        return START

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)

    async def wait(self, tasks: object, within: float) -> set[object]:
        raise NotImplementedError


async def test_a_thousand_concurrent_sends_all_go_out_once(graph_server: FakeGraph) -> None:
    # Meta answers in 0.2 s; the timeout (1 s) is far above that, but a thousand sends
    # share one pool: most wait for a connection longer than the timeout.
    graph_server.latency = 0.2
    settings = CloudSettings(phone_number_id=graph_server.phone_number_id,
                             access_token=graph_server.token, graph_url=graph_server.graph_url,
                             timeout=1.0, max_retries=1, backoff_initial=0.0)
    graph = GraphAPI(settings, InstantClock())  # type: ignore[arg-type]
    try:
        results = await asyncio.gather(
            *(graph.send(f"52155{n:08d}", "text", {"body": f"reply {n}"})
              for n in range(SENDS)), return_exceptions=True)
    finally:
        await graph.close()
    failed = [r for r in results if isinstance(r, BaseException)]
    assert failed == [], f"{len(failed)} of {SENDS} sends failed, e.g. {failed[0]!r}"
    assert sorted(c.body["to"] for c in graph_server.sends()) == sorted(
        f"52155{n:08d}" for n in range(SENDS))  # each once
