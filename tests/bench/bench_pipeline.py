"""Pipeline benchmark (not part of the test run): throughput, own overhead, memory per agent.

    python tests/bench/bench_pipeline.py [--customers 1000 10000] [--latency 0.2]
                                         [--database-url postgresql://…] [--mongodb]

`--mongodb` keeps the agents' memory in MongoDB: a SecantusDB server (test-only, in a
process of its own, like the model) stands in for mongod, whose timing differs.

The fake OpenAI-wire server runs in its own process (as a real endpoint would), at a fixed
latency. Presentation delays and debounce are off: they are waiting, not work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bot.app import App  # noqa: E402
from bot.business import DEFAULT_BUSINESS  # noqa: E402
from bot.gateway.memory import MemoryGateway  # noqa: E402
from bot.models import CustomerKey, InboundMessage, MemoryMessage, Role  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from bot.stores.customers import Contact  # noqa: E402
from bot.stores.memory_base import Fact  # noqa: E402

INSIGHTS = False  # --insights: also run the background insight call after every turn
MONGODB_URL = ""  # --mongodb: the agents' memory in MongoDB (SecantusDB)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def runqueue_wait() -> float:
    """Seconds the event loop's thread spent runnable but waiting for a CPU (the kernel's
    schedstat): on a shared machine, the part of wall time that is other people's load."""
    with open("/proc/thread-self/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


def start_fake_llm(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--latency", str(latency)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        raise RuntimeError(f"fake server did not start: {line!r}")
    return proc, line.split()[1]


def make_app(base_url: str, db_url: str, state: Path, tenant: str, concurrency: int) -> App:
    settings = load_settings(
        None, tenant=tenant, state_dir=state, database_url=db_url,
        llm={"base_url": base_url, "api_key": "bench", "max_retries": 0, "timeout": 30},
        presenter={"enabled": False}, inbox={"debounce_seconds": 0,
                                             "max_concurrent_turns": concurrency},
        memory={"insights": INSIGHTS}, log_level="WARNING",
        **({"mongodb_url": MONGODB_URL} if MONGODB_URL else {}))
    # Unpaced: the pipeline's capacity (many numbers), not one WhatsApp Web number's pace.
    return App(settings, MemoryGateway(paced=False), business=DEFAULT_BUSINESS)


class Timing:
    """Per-message wall time from feed to sent, and the time spent waiting on the LLM."""

    def __init__(self, app: App) -> None:
        self.fed: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.llm: dict[str, float] = {}
        self.overhead: list[float] = []
        self.finished = asyncio.Event()
        self.expected = 0
        llm = app.shared.llm
        original = llm.complete

        async def timed(messages: list[dict[str, Any]], *a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await original(messages, *a, **kw)
            finally:
                phone = str(messages[-1]["content"]).split()[-1]
                self.llm[phone] = self.llm.get(phone, 0.0) + time.perf_counter() - t0

        llm.complete = timed  # type: ignore[method-assign]
        app.unit.gateway.listeners.append(self._sent)  # type: ignore[attr-defined]

    def _sent(self, out: Any) -> None:
        if out.action != "text":
            return
        phone = "+" + out.chat.split("@")[0]
        self.done[phone] = time.perf_counter()
        if len(self.done) >= self.expected:
            self.finished.set()

    def overhead_ms(self) -> list[float]:
        return sorted((self.done[p] - self.fed[p] - self.llm.get(p, 0.0)) * 1000
                      for p in self.done)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


async def feed_round(app: App, timing: Timing, tenant: str, phones: list[str],
                     tag: str) -> tuple[float, float, list[float]]:
    """Every customer writes once; returns wall seconds, CPU seconds, overheads (ms)."""
    timing.done.clear()
    timing.llm.clear()
    timing.finished.clear()
    timing.expected = len(phones)
    t0, cpu0, wait0 = time.perf_counter(), time.process_time(), runqueue_wait()
    for i, phone in enumerate(phones):
        timing.fed[phone] = time.perf_counter()
        await app.unit.inbox.feed(InboundMessage(
            tenant=tenant, phone=phone, msg_id=f"{tag}{i}", timestamp=app.unit.clock.now(),
            text=f"hello from {phone}", chat=app.unit.gateway.chat_for(phone)))
    await asyncio.wait_for(timing.finished.wait(), timeout=1800)
    elapsed = time.perf_counter() - t0
    print(f"  (waited {runqueue_wait() - wait0:.1f} s of {elapsed:.1f} s for a CPU)")
    return elapsed, time.process_time() - cpu0, timing.overhead_ms()


async def throughput(base_url: str, db_url: str, state: Path, n: int, concurrency: int) -> None:
    """`n` customers write once (first contact: agents created), then once more (warm
    agents). CPU is this process's time (the model runs in another process)."""
    tenant = f"bench{n}-{int(time.time())}"
    app = make_app(base_url, db_url, state, tenant, concurrency)
    await app.start()
    timing = Timing(app)
    phones = [f"+1555{i:07d}" for i in range(n)]
    for label, tag in (("first contact", "A"), ("warm agents  ", "B")):
        elapsed, cpu, over = await feed_round(app, timing, tenant, phones, tag)
        print(f"throughput  customers={n:>6}  {label}  {n / elapsed:8.1f} msg/s  "
              f"({elapsed:.1f} s)  CPU {cpu / n * 1000:.2f} ms/msg, {cpu / elapsed:.0%} of a core  "
              f"overhead under load p50={pct(over, .5):.1f} ms p99={pct(over, .99):.1f} ms")
    await app.stop()


async def sequential_overhead(base_url: str, db_url: str, state: Path, n: int) -> None:
    """One message at a time: the pipeline's own cost with nothing else competing."""
    tenant = f"seq-{int(time.time())}"
    app = make_app(base_url, db_url, state, tenant, 1)
    await app.start()
    timing = Timing(app)
    for i in range(n):
        phone = f"+1666{i % 200:07d}"  # 200 customers, so most turns hit a cached agent
        timing.done.pop(phone, None)
        timing.llm.pop(phone, None)
        timing.expected = len(timing.done) + 1
        timing.finished.clear()
        timing.fed[phone] = time.perf_counter()
        await app.unit.inbox.feed(InboundMessage(
            tenant=tenant, phone=phone, msg_id=f"S{i}", timestamp=app.unit.clock.now(),
            text=f"question {i} from {phone}", chat=app.unit.gateway.chat_for(phone)))
        await timing.finished.wait()
        if i >= 200:
            timing.overhead.append((timing.done[phone] - timing.fed[phone]
                                    - timing.llm[phone]) * 1000)
    over = sorted(timing.overhead)
    print(f"own overhead (sequential, {len(over)} turns, warm agents)  "
          f"p50={pct(over, .5):.2f} ms  p99={pct(over, .99):.2f} ms")
    await app.stop()


async def agent_memory(base_url: str, db_url: str, state: Path, n: int) -> None:
    """Agents of real customers: a stored customer row, a rolling summary, facts, and a
    window of 20 recent messages (10 turns) held by the cached agent."""
    tenant = f"mem-{int(time.time())}"
    app = make_app(base_url, db_url, state, tenant, 1)
    await app.start()
    keys = [CustomerKey(tenant, f"+1777{i:07d}") for i in range(n)]
    summary = ("Ana asked about the blue sneaker in size 24, compared it with the loafer, "
               "said she would decide after payday and prefers evening messages. ") * 6
    now = app.unit.clock.now()
    for key in keys:
        await app.unit.customers.touch(key, Contact(name="Ana María"), now, inbound=1)
        await app.unit.memory.append(key, [
            MemoryMessage(Role.CUSTOMER if j % 2 == 0 else Role.AGENT,
                          f"line {j}: do you have the blue sneakers in size 24, and until when "
                          "is the offer on?" if j % 2 == 0 else
                          f"line {j}: yes, sizes 22 to 30, the offer runs until Sunday.", now)
            for j in range(20)])
        await app.unit.memory.save_summary(key, summary, 0)
        await app.unit.memory.merge_facts(key, [Fact(f"fact_{j}", f"value number {j} for this customer")
                                           for j in range(8)])
    async with app.unit.registry.use(keys[0]):
        pass
    gc.collect()
    tracemalloc.start()
    before, traced0 = rss_bytes(), tracemalloc.get_traced_memory()[0]
    for key in keys[1:]:
        async with app.unit.registry.use(key) as agent:
            assert len(agent.window) == 20
    gc.collect()
    after, traced1 = rss_bytes(), tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"memory per cached idle agent ({n - 1} agents, {len(summary)}-char summary, "
          f"8 facts, 20-message window): {(traced1 - traced0) / (n - 1):.0f} bytes traced by "
          f"tracemalloc, {(after - before) / (n - 1):.0f} bytes RSS delta")
    hits = 200_000
    t0 = time.perf_counter()
    for i in range(hits):
        async with app.unit.registry.use(keys[i % n]):
            pass
    per = (time.perf_counter() - t0) / hits * 1e6
    print(f"registry hit cost: {per:.2f} µs per use() on a cached agent")
    await app.stop()


async def simulate_run(base_url: str, db_url: str, state: Path, n: int) -> None:
    """`wabot simulate` of `n` customers writing within one minute (presenter on)."""
    import io
    import json
    from datetime import UTC, datetime

    from bot.cli.simulate import simulate

    settings = load_settings(
        None, tenant=f"sim-{int(time.time())}", state_dir=state, database_url=db_url,
        llm={"base_url": base_url, "api_key": "bench", "max_retries": 0, "timeout": 30},
        memory={"insights": INSIGHTS}, log_level="WARNING")
    lines = [json.dumps({"op": "message", "at": round(i * 60 / n, 3), "from": f"+1888{i:07d}",
                         "text": f"hola, soy el cliente {i}"}) for i in range(n)]
    out = io.StringIO()
    t0, cpu0 = time.perf_counter(), time.process_time()
    await simulate(settings, lines, out, start=datetime.now(UTC))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    answered = {json.loads(x).get("to") for x in out.getvalue().splitlines()} - {None}
    print(f"simulate: {n} customers in one virtual minute: {len(answered)} answered, "
          f"{wall:.1f} s wall, CPU {cpu / n * 1000:.2f} ms/customer (start-up included)")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--insights", action="store_true",
                    help="keep background insight extraction on (an extra LLM call per turn)")
    ap.add_argument("--memory-agents", type=int, default=2000,
                    help="agents for the memory-per-agent figure (0: skip)")
    ap.add_argument("--simulate", type=int, default=0,
                    help="also run `wabot simulate` of this many customers in one minute")
    ap.add_argument("--skip-sequential", action="store_true")
    ap.add_argument("--mongodb", action="store_true",
                    help="agents' memory in MongoDB (a SecantusDB server started here)")
    args = ap.parse_args()
    global INSIGHTS, MONGODB_URL
    INSIGHTS = args.insights
    with contextlib.ExitStack() as stack:
        if args.mongodb:
            from tests.fakes.mongo_server import mongo_server
            MONGODB_URL = stack.enter_context(mongo_server())
        await run(args)


async def run(args: argparse.Namespace) -> None:
    proc, base_url = start_fake_llm(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            state = Path(tmp)
            db_url = args.database_url or f"sqlite:///{state / 'bench.db'}"
            memory = "  memory: MongoDB (SecantusDB)" if MONGODB_URL else ""
            print(f"database: {db_url.split('@')[-1]}{memory}"
                  f"  fake LLM latency: {args.latency * 1000:.0f} ms"
                  f"  concurrency: {args.concurrency}  cpus: {os.cpu_count()}"
                  f"  insights: {'on' if INSIGHTS else 'off'}")
            for n in args.customers:
                await throughput(base_url, db_url, state, n, args.concurrency)
            if not args.skip_sequential:
                await sequential_overhead(base_url, db_url, state, 1200)
            if args.memory_agents:
                await agent_memory(base_url, db_url, state, args.memory_agents)
            if args.simulate:
                await simulate_run(base_url, db_url, state, args.simulate)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
