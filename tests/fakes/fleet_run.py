"""A fleet under fire: several `wabot run` processes (nodes) on one PostgreSQL database
serving many numbers, some on the Cloud API (signed webhooks in, each node's own loopback
Graph API out), some on WhatsApp Web (the stand-in Go layer against the fake WhatsApp
servers); customers write throughout while nodes are killed (SIGKILL), drained (SIGTERM)
or frozen past their lease (SIGSTOP, then SIGCONT).

Every reply is recorded with the node that sent it, and the lease table is sampled as the
run goes, so the figures say: messages lost, answered twice, sent by a node that did not
hold the number at that moment, and for each number a node left behind, how long until
another node held it and until it answered again.

Used by `tests/fleet/test_failover.py` (small) and `tests/bench/bench_fleet.py` (3 nodes,
30 numbers, the figures in the README).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import random
import re
import signal
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg2

from tests.fakes import meta_webhooks as meta
from tests.fakes.chaos import Daemon, daemon_env
from tests.fakes.graph_server import Call, FakeGraph
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.whatsapp_server import FakeWhatsApp, Sent

_TOKEN = re.compile(r"\bc(\d+)m(\d+)\b")
TOKEN_ENV = "FLEET_GRAPH_TOKEN"


@dataclass(frozen=True)
class Step:
    at: float  # seconds after the customers start
    action: str  # kill | start | term | freeze (SIGSTOP for `hold` seconds, then SIGCONT)
    node: str
    hold: float = 0.0


@dataclass
class Orphan:
    """A number a node held when it was killed, drained or frozen."""
    number: str
    action: str
    taken: float | None = None  # seconds until another node held its lease
    answered: float | None = None  # seconds until another node answered on it


@dataclass
class FleetFigures:
    nodes: int = 0
    numbers: int = 0
    messages: int = 0
    answered: int = 0
    lost: int = 0
    duplicated: int = 0
    stale_sends: int = 0  # replies sent by a node that did not hold the number then
    kills: int = 0
    drains: int = 0
    freezes: int = 0
    orphans: list[Orphan] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    twice: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    seconds: float = 0.0
    logs: dict[str, str] = field(default_factory=dict)

    def recovery(self, action: str, what: str = "answered") -> list[float]:
        return sorted(getattr(o, what) for o in self.orphans
                      if o.action == action and getattr(o, what) is not None)

    def summary(self) -> str:
        lines = [f"{self.nodes} nodes, {self.numbers} numbers, {self.messages} messages: "
                 f"answered {self.answered}, lost {self.lost}, duplicated {self.duplicated}, "
                 f"sent by a node not holding the number {self.stale_sends}; kills "
                 f"{self.kills}, drains {self.drains}, freezes {self.freezes}; "
                 f"reply p50 {_pct(self.latencies, 50):.2f} s, p99 "
                 f"{_pct(self.latencies, 99):.2f} s; run {self.seconds:.0f} s"]
        if self.twice:
            lines.append(f"  answered twice: {', '.join(self.twice[:20])}")
        if self.unanswered:
            lines.append(f"  never answered: {', '.join(self.unanswered[:20])}")
        for action in ("kill", "term", "freeze"):
            orphans = [o for o in self.orphans if o.action == action]
            if not orphans:
                continue
            taken, answered = self.recovery(action, "taken"), self.recovery(action)
            lines.append(
                f"  {action}: {len(orphans)} numbers left behind; held elsewhere after p50 "
                f"{_pct(taken, 50):.1f} s, p99 {_pct(taken, 99):.1f} s, max "
                f"{max(taken, default=float('nan')):.1f} s; answering again after p50 "
                f"{_pct(answered, 50):.1f} s, p99 {_pct(answered, 99):.1f} s, max "
                f"{max(answered, default=float('nan')):.1f} s; never answered again "
                f"{sum(o.answered is None for o in orphans)}")
        return "\n".join(lines)


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class Node:
    def __init__(self, name: str, workdir: Path, env: dict[str, str], graph: FakeGraph) -> None:
        self.name = name
        self.graph = graph
        self.daemon = Daemon(workdir, env)
        self.daemon.command = [sys.executable, "-m", "tests.fakes.standin_go", "run"]

    def start(self) -> None:
        self.daemon.start()

    @property
    def alive(self) -> bool:
        p = self.daemon.proc
        return p is not None and p.poll() is None and bool(self.daemon.url)


class Owners:
    """The lease table, sampled: who held each number when."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, dict[str, str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="owners")

    def _run(self) -> None:
        conn = psycopg2.connect(self.url)
        conn.autocommit = True
        try:
            cur = conn.cursor()
            while not self._stop.is_set():
                cur.execute("SELECT number, owner FROM number_leases WHERE owner IS NOT NULL "
                            "AND expires_at > extract(epoch FROM clock_timestamp())")
                self.samples.append((time.monotonic(), dict(cur.fetchall())))
                self._stop.wait(0.1)
        finally:
            conn.close()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def now(self) -> dict[str, str]:
        return dict(self.samples[-1][1]) if self.samples else {}

    def held_by(self, number: str, node: str, at: float) -> bool:
        """Whether `node` may have held `number` at `at`: the last sample before and the
        first after do not both say it did not (the sampler can fall behind on a loaded
        machine, so the gap between them may be long)."""
        times = [t for t, _ in self.samples]
        i = bisect.bisect_right(times, at)
        around = [self.samples[j][1] for j in (i - 1, i) if 0 <= j < len(self.samples)]
        return any(owners.get(number) == node for owners in around)

    def taken(self, number: str, node: str, since: float) -> float | None:
        for t, owners in self.samples:
            if t >= since and owners.get(number) not in (None, node):
                return t - since
        return None


@dataclass
class Reply:
    at: float
    node: str
    number: str


class FleetRun:
    def __init__(self, workdir: Path, db_url: str, *, nodes: int = 3, cloud: int = 15,
                 web: int = 15, customers_per_number: int = 2, think: float = 1.0,
                 lease: float = 20.0, renew: float = 5.0, llm_latency: float = 0.2,
                 seed: int = 7, log_level: str = "INFO") -> None:
        self.workdir = workdir
        self.db_url = db_url
        self.node_names = [f"node-{chr(ord('a') + i)}" for i in range(nodes)]
        self.cloud = [f"cl{i:02d}" for i in range(cloud)]
        self.web = [f"wb{i:02d}" for i in range(web)]
        self.phone_ids = {key: f"10{i:013d}" for i, key in enumerate(self.cloud)}
        self.customers_per_number = customers_per_number
        self.think = think
        self.lease, self.renew = lease, renew
        self.llm_latency = llm_latency
        self.rng = random.Random(seed)
        self.log_level = log_level
        self.replies: dict[str, list[Reply]] = defaultdict(list)
        self.events: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.sent_at: dict[str, float] = {}
        self.lock = threading.Lock()
        self.nodes: dict[str, Node] = {}
        self.left: list[tuple[str, str, str, float]] = []  # (number, action, node, when)
        self.log: list[str] = []  # every reply, in order: for a failing run's report

    # replies, from the fakes' threads
    def _seen(self, body: str, node: str, number: str, loop: asyncio.AbstractEventLoop) -> None:
        now = time.monotonic()
        for match in _TOKEN.finditer(body):
            token = match.group(0)
            with self.lock:
                self.replies[token].append(Reply(now, node, number))
                self.log.append(f"{now:.2f} reply {token} by {node} on {number}")
            loop.call_soon_threadsafe(self.events[token].set)

    def _on_graph(self, node: str, loop: asyncio.AbstractEventLoop):  # type: ignore[no-untyped-def]
        numbers = {pid: key for key, pid in self.phone_ids.items()}

        def on_call(call: Call) -> None:
            if call.body.get("type") == "text":
                pid = call.path.strip("/").split("/")[-2]
                self._seen(call.body["text"]["body"], node, numbers.get(pid, pid), loop)
        return on_call

    def _on_web(self, loop: asyncio.AbstractEventLoop):  # type: ignore[no-untyped-def]
        def on_sent(sent: Sent) -> None:
            self._seen(sent.text, sent.node, sent.number, loop)
        return on_sent

    async def _register(self) -> None:
        import bot.wiring  # noqa: F401  (every table)
        from bot.clock import SystemClock
        from bot.fleet.numbers import NumberStore
        from bot.stores.db import Database

        db = Database(self.db_url)
        try:
            await db.create_all()
            store = NumberStore(db, SystemClock())
            for key in self.cloud[1:]:  # the first is every node's configured number
                await store.add(key, "cloud", {"cloud": {
                    "phone_number_id": self.phone_ids[key], "access_token_env": TOKEN_ENV}})
            for key in self.web:
                await store.add(key, "web", {})
        finally:
            await db.close()

    def _node(self, name: str, llm: FakeOpenAI, wa: FakeWhatsApp,
              loop: asyncio.AbstractEventLoop) -> Node:
        graph = FakeGraph(self.phone_ids[self.cloud[0]]).start()
        graph.numbers.update(self.phone_ids.values())
        graph.listeners.append(self._on_graph(name, loop))
        workdir = self.workdir / name
        workdir.mkdir(parents=True, exist_ok=True)
        env = daemon_env(workdir, llm, graph)
        env.update({
            "WABOT_TENANT": self.cloud[0], "WABOT_DATABASE_URL": self.db_url,
            "WABOT_FLEET__NODE_ID": name, "WABOT_FLEET__LEASE_SECONDS": str(self.lease),
            "WABOT_FLEET__RENEW_SECONDS": str(self.renew), TOKEN_ENV: graph.token,
            "WABOT_STANDIN_WHATSAPP": wa.address, "WABOT_LOG_LEVEL": self.log_level,
            "WABOT_WHATSAPP__PROBE_HOST": "127.0.0.1",
            "WABOT_WHATSAPP__PROBE_PORT": str(wa.port),
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            # Customers here write every few seconds, far more often than people do: the
            # per-customer and per-number caps would hold most of it back.
            "WABOT_LIMITS__TURNS_PER_MINUTE": "120",
            "WABOT_PACING__MESSAGES_PER_MINUTE": "120",
            # Three nodes and the tests of other engineers on one PostgreSQL server.
            "WABOT_DATABASE_POOL": "4",
        })
        return Node(name, workdir, env, graph)

    async def _customer(self, n: int, number: str, messages: int, start: float,
                        until: float, http: httpx.AsyncClient, wa: FakeWhatsApp,
                        reply_timeout: float) -> None:
        wa_id = f"52155{n:08d}"
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        for k in range(messages):
            if time.monotonic() > until:
                return
            token = f"c{n}m{k}"
            self.sent_at[token] = time.monotonic()
            self.log.append(f"{self.sent_at[token]:.2f} sent {token} to {number}")
            if number in self.phone_ids:
                payload = meta.envelope(
                    messages=[meta.message(wa_id, "text", f"wamid.C{n}M{k}",
                                           body=f"{token} hola")],
                    names={wa_id: f"Cliente {n}"}, phone_number_id=self.phone_ids[number])
                await meta.deliver(http, self._balancer, payload, give_up=600)
            else:
                wa.deliver(number, wa_id, f"3EB0C{n:05d}M{k:04d}", f"{token} hola",
                           f"Cliente {n}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.events[token].wait(), reply_timeout)
            await asyncio.sleep(self.think * self.rng.uniform(0.5, 1.5))

    def _balancer(self) -> str:
        """The load balancer in front of the nodes: any node that is up."""
        alive = [n for n in self.nodes.values() if n.alive]
        return self.rng.choice(alive).daemon.url if alive else ""

    async def run(self, steps: list[Step], *, duration: float, messages: int = 1000,
                  reply_timeout: float = 90.0, settle: float = 60.0) -> FleetFigures:
        figures = FleetFigures(nodes=len(self.node_names),
                               numbers=len(self.cloud) + len(self.web))
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        await self._register()
        owners = Owners(self.db_url)
        with FakeOpenAI(latency=self.llm_latency) as llm, FakeWhatsApp() as wa:
            self.wa = wa
            wa.listeners.append(self._on_web(loop))
            self.nodes = {name: self._node(name, llm, wa, loop) for name in self.node_names}
            try:
                for node in self.nodes.values():
                    node.start()
                for node in self.nodes.values():
                    await node.daemon.ready()
                owners.start()
                await self._balanced(figures)
                t0 = time.monotonic()
                numbers = self.cloud + self.web
                limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
                async with httpx.AsyncClient(timeout=10, limits=limits) as http:
                    customers = [
                        self._customer(i * self.customers_per_number + c, number, messages,
                                       t0 + self.rng.uniform(0, self.think), t0 + duration,
                                       http, wa, reply_timeout)
                        for i, number in enumerate(numbers)
                        for c in range(self.customers_per_number)]
                    await asyncio.gather(self._steps(steps, t0, owners, figures), *customers)
                    deadline = time.monotonic() + settle
                    while time.monotonic() < deadline and not all(
                            self.events[t].is_set() for t in self.sent_at):
                        await asyncio.sleep(0.2)
                    await asyncio.sleep(2.0)  # a second answer would come by now
            finally:
                owners.stop()
                for node in self.nodes.values():
                    if node.daemon.proc is not None and node.daemon.proc.poll() is None:
                        node.daemon.proc.send_signal(signal.SIGCONT)
                    node.daemon.stop()
                    node.graph.stop()
                    figures.logs[node.name] = node.daemon.logfile.read_text(errors="replace")
        figures.seconds = time.monotonic() - started
        self._tally(figures, owners)
        return figures

    async def _balanced(self, figures: FleetFigures, within: float = 120.0) -> None:
        """Until every number is held and no node holds more than its fair share."""
        total = len(self.cloud) + len(self.web)
        share = -(-total // len(self.nodes))
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            held = self._owners_now()
            counts = defaultdict(int)
            for owner in held.values():
                counts[owner] += 1
            if len(held) == total and max(counts.values(), default=0) <= share:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"the fleet did not settle: {self._owners_now()}")

    def _owners_now(self) -> dict[str, str]:
        conn = psycopg2.connect(self.db_url)
        try:
            cur = conn.cursor()
            cur.execute("SELECT number, owner FROM number_leases WHERE owner IS NOT NULL "
                        "AND expires_at > extract(epoch FROM clock_timestamp())")
            return dict(cur.fetchall())
        finally:
            conn.close()

    async def _steps(self, steps: list[Step], t0: float, owners: Owners,
                     figures: FleetFigures) -> None:
        for step in steps:
            await asyncio.sleep(max(0.0, t0 + step.at - time.monotonic()))
            node = self.nodes[step.node]
            if step.action == "start":
                node.start()
                await node.daemon.ready()
                continue
            held = [n for n, o in owners.now().items() if o == node.name]
            at = time.monotonic()
            self.log.append(f"{at:.2f} {step.action} {node.name} holding {' '.join(held)}")
            proc = node.daemon.proc
            assert proc is not None
            if step.action == "kill":
                node.daemon.kill()
                figures.kills += 1
            elif step.action == "term":
                node.daemon.url = ""
                proc.send_signal(signal.SIGTERM)
                await asyncio.to_thread(proc.wait, 60)
                figures.drains += 1
            elif step.action == "freeze":
                url, node.daemon.url = node.daemon.url, ""  # the balancer's health check
                proc.send_signal(signal.SIGSTOP)
                figures.freezes += 1
                await asyncio.sleep(step.hold)
                proc.send_signal(signal.SIGCONT)
                node.daemon.url = url
            self.left.extend((number, step.action, node.name, at) for number in held)

    def _why_twice(self, seen: list[Reply]) -> str:
        """Where a reply went twice: the number, who sent it first and how long before that
        node was killed, drained or frozen (a turn whose write the fault cut off)."""
        first = seen[0]
        faults = [(at, action) for number, action, node, at in self.left
                  if number == first.number and node == first.node and at >= first.at]
        if not faults:
            return f"{first.number}, first by {first.node}, no fault after it"
        at, action = min(faults)
        return f"{first.number}, first by {first.node} {at - first.at:.2f} s before its {action}"

    def _tally(self, figures: FleetFigures, owners: Owners) -> None:
        figures.messages = len(self.sent_at)
        for token, first in self.sent_at.items():
            seen = self.replies.get(token, [])
            if not seen:
                figures.lost += 1
                figures.unanswered.append(token)
                continue
            figures.answered += 1
            figures.duplicated += len(seen) - 1
            if len(seen) > 1:
                figures.twice.append(f"{token} ({self._why_twice(seen)})")
            figures.latencies.append(seen[0].at - first)
        for token, seen in self.replies.items():
            for reply in seen:
                if not owners.held_by(reply.number, reply.node, reply.at):
                    figures.stale_sends += 1
                    figures.stale.append(f"{token} by {reply.node} on {reply.number}")
        for number, action, node, at in self.left:
            after = [r.at for seen in self.replies.values() for r in seen
                     if r.number == number and r.node != node and r.at >= at]
            figures.orphans.append(Orphan(number, action, taken=owners.taken(number, node, at),
                                          answered=(min(after) - at) if after else None))

