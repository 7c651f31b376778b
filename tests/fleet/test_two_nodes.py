"""Two `wabot run` processes (nodes) on one PostgreSQL database and one Cloud API number:
one serves it, the other waits; webhooks reaching either are answered once, by the owner;
the owner killed (SIGKILL), frozen past its lease (SIGSTOP) or stopped (SIGTERM) is
replaced, and a frozen owner that wakes up sends nothing.

Each node sends through its own loopback Graph API, so every reply says which node sent it.
Real processes and real seconds: in the `chaos` group (run alone, `pytest -m chaos`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes import meta_webhooks as meta
from tests.fakes.chaos import Daemon, daemon_env
from tests.fakes.graph_server import FakeGraph
from tests.fakes.openai_server import FakeOpenAI

pytestmark = [pytest.mark.chaos, pytest.mark.skipif(
    not os.environ.get("WABOT_TEST_POSTGRES_URL"),
    reason="several nodes need PostgreSQL (set WABOT_TEST_POSTGRES_URL)")]

LEASE = 6.0  # seconds: a frozen owner is replaced after this long


class Node:
    def __init__(self, name: str, workdir: Path, llm: FakeOpenAI, graph: FakeGraph,
                 tenant: str, db_url: str) -> None:
        env = daemon_env(workdir, llm, graph)
        env.update({"WABOT_TENANT": tenant, "WABOT_DATABASE_URL": db_url,
                    "WABOT_FLEET__NODE_ID": name, "WABOT_FLEET__LEASE_SECONDS": str(LEASE),
                    "WABOT_FLEET__RENEW_SECONDS": "1", "WABOT_LOG_LEVEL": "DEBUG"})
        self.name = name
        self.graph = graph
        self.daemon = Daemon(workdir, env)

    def texts(self) -> list[str]:
        return [c.body["text"]["body"] for c in self.graph.calls
                if c.body.get("type") == "text"]

    def log(self) -> str:
        return self.daemon.logfile.read_text(errors="replace")[-6000:]


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(latency=0.05) as server:
        yield server


@pytest.fixture
async def nodes(tmp_path: Path, llm: FakeOpenAI,
                fleet_db_url: str) -> AsyncIterator[tuple[Node, Node]]:
    tenant = f"fleet-{uuid.uuid4().hex[:8]}"
    url = fleet_db_url
    with FakeGraph() as graph_a, FakeGraph() as graph_b:
        a = Node("node-a", tmp_path / "a", llm, graph_a, tenant, url)
        b = Node("node-b", tmp_path / "b", llm, graph_b, tenant, url)
        for n in (a, b):
            (tmp_path / n.name[-1]).mkdir()
        a.daemon.start()
        await a.daemon.ready()
        await _until(lambda: "serves number" in a.log(), a)  # A holds the number
        b.daemon.start()
        await b.daemon.ready()
        await _until(lambda: "waiting for it" in b.log(), b)  # B is the standby
        try:
            yield a, b
        finally:
            for n in (a, b):
                if n.daemon.proc is not None and n.daemon.proc.poll() is None:
                    n.daemon.proc.send_signal(signal.SIGCONT)
                n.daemon.stop()


async def _until(done: object, node: Node, within: float = 30.0) -> float:
    started = time.monotonic()
    while not done():  # type: ignore[operator]
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within} s; {node.name}'s log:\n{node.log()}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def _post(node: Node, token: str, wa_id: str = "5215512345678",
                fallback: Node | None = None) -> None:
    """As Meta does: until answered 2xx; with `fallback`, to it once `node` is gone (the
    load balancer in front of the nodes)."""
    def url() -> str:
        alive = node.daemon.proc is not None and node.daemon.proc.poll() is None
        return node.daemon.url if alive or fallback is None else fallback.daemon.url

    async with httpx.AsyncClient(timeout=30) as http:
        await meta.deliver(http, url, meta.text(
            wa_id, f"{token} hola", msg_id=f"wamid.{token}"), give_up=30)


def _answered(node: Node, token: str) -> int:
    return sum(token in text for text in node.texts())


async def test_a_webhook_reaching_the_standby_is_answered_once_by_the_owner(
        nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    await _post(b, "t1")  # journaled by B, answered by A (woken by NOTIFY)
    await _until(lambda: _answered(a, "t1") == 1, a, within=10)
    await _post(a, "t2")
    await _until(lambda: _answered(a, "t2") == 1, a, within=10)
    await asyncio.sleep(1.5)  # a second answer would come by now
    assert (_answered(a, "t1"), _answered(b, "t1"), _answered(b, "t2")) == (1, 0, 0)


async def test_the_owner_killed_is_replaced_and_nothing_is_lost(
        nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    await _post(a, "k1")
    await _until(lambda: _answered(a, "k1") == 1, a)
    # Past the one window no transport can close (sent, not yet journaled as answered:
    # Meta's send has no idempotency key), a kill must not cost a second answer.
    await asyncio.sleep(1.0)
    a.daemon.kill()
    killed = time.monotonic()
    await _post(b, "k2")
    await _until(lambda: _answered(b, "k2") == 1, b, within=LEASE + 10)
    print(f"answering again {time.monotonic() - killed:.1f} s after the kill")
    assert _answered(a, "k2") == 0 and _answered(b, "k1") == 0


async def test_a_frozen_owner_is_replaced_and_sends_nothing_when_it_wakes(
        nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    assert a.daemon.proc is not None
    a.daemon.proc.send_signal(signal.SIGSTOP)
    frozen = time.monotonic()
    await _post(b, "s1")  # B journals it; it answers once it holds the number
    await _until(lambda: _answered(b, "s1") == 1, b, within=LEASE + 10)
    taken = time.monotonic() - frozen
    # The lease was renewed at most one renewal period (1 s) before the freeze: it lapses
    # no sooner than LEASE - 1 s after it (CI once saw 5.3 s against the 5.4 s asked here).
    assert taken >= LEASE - 1.0, f"taken after {taken:.1f} s: before the lease lapsed"
    before = len(a.graph.calls)
    # A message A had accepted before it froze would be sent by it now: one it receives
    # the moment it wakes is the same case.
    sending = asyncio.create_task(_post(a, "s2", fallback=b))
    await asyncio.sleep(0.5)
    a.daemon.proc.send_signal(signal.SIGCONT)
    await _until(lambda: _answered(b, "s2") == 1, b, within=15)
    await _until(lambda: a.daemon.proc is not None and a.daemon.proc.poll() is not None, a,
                 within=LEASE + 10)  # A saw it lost the number and left
    sending.cancel()
    await asyncio.sleep(2)  # a second answer (a stale reply redelivered) would come by now
    assert a.graph.calls[before:] == [], "the stale node sent after it woke"
    assert (_answered(b, "s1"), _answered(b, "s2")) == (1, 1)
    assert "no more sends from this node" in a.log()


async def test_a_graceful_stop_hands_the_number_over_at_once(
        nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    stopping = time.monotonic()
    assert a.daemon.stop() == 0
    await _post(b, "d1")
    took = await _until(lambda: _answered(b, "d1") == 1, b, within=10)
    print(f"served by the standby {time.monotonic() - stopping:.1f} s after SIGTERM")
    assert took < 5
