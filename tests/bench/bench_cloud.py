"""The daemon as deployed against a bare relay, in one run (issue #23; not part of the tests).

    python tests/bench/bench_cloud.py [--customers 1000] [--latency 0.2] [--turns 256]
        [--database-url postgresql://…] [--no-postgres] [--bursts 64 1000 10000]
        [--rate 100] [--compare DIR] [--profile DIR] [--repeat 1] [--pin]

`wabot run` as a subprocess on the Cloud API transport: signed webhooks in over HTTP (the
console's server), replies out to a loopback Graph API; the model (the fake OpenAI-wire
server, 200 ms a completion) and the Graph API each in a process of their own. The bare
relay (`tests/bench/loopback.py`: check the signature, parse the webhook, post to the model,
post the reply to Graph; no storage) is measured in the same run against the same servers.

Every customer writes twice: first contact (the customer and the agent are created), then
warm (the agent is cached). CPU is the measured process's own (user + system time from
/proc/<pid>/stat) divided by the messages; the model, Graph, PostgreSQL and this driver run
in other processes. Throughput is messages over the time from the first webhook to the last
reply, so it includes the model's and the debounce's wait once per round (0.4 s of a
1,000-message round that lasts about 2.5 s): more customers (`--customers 4000`) bring it
closer to what the process sustains. Settings are the defaults but for debounce 0.2 s, the
presenter off, the memory keeper's insight call off (one model call per message, as in the
relay) and `inbox.max_concurrent_turns` (`--turns`).

Paced (`--rate`, 100 msg/s; 0: none): after the warm round, every customer writes once
more, one webhook every 1/rate seconds (a steady load, not a burst), and each message's own
overhead is measured: (when its reply reached the Graph API − when its webhook was posted)
− the model's latency (`--latency`, the fake model's sleep) − the debounce (0.2 s; the relay
has none). Both instants are `time.monotonic()`, one clock for every process on Linux: the
driver's just before it posts, the Graph server's as it reads the reply's body. What is left
is everything but the two waits: the webhook, journal and turn, the model's HTTP round trip
and the Graph call; the relay measured the same way is its floor. p50 and p99 over the
messages, and the CPU per message of that round.

Burst runs (SQLite): 1,000 new customers at once with `max_concurrent_turns` at each of
`--bursts`: replies delivered, duplicates, messages whose reply was not delivered (journal
status other than answered), peak RSS of the daemon.

`--repeat N` runs the relay and every wabot N times, interleaved (relay, wabot…, relay,
wabot…, relay; with `--compare`, each repetition starts with the other tree), and ends
with a table of medians: each ratio is a median against the median of the relay runs, so
one slow moment of this shared machine does not make the figure.

`--pin` runs the measured process (the daemon or the relay, every thread of it) on one core
and everything else (this driver, the model and the Graph API) on the others: the figures
are then one process's on one core, undisturbed by its own load generator. PostgreSQL's
server processes are not pinned.

`--compare DIR` measures a second wabot tree too (e.g. `git archive` of the previous commit
unpacked in DIR), side by side: before/after in one run. `--profile DIR` runs py-spy on each
wabot round (non-blocking sampling: the daemon is never paused, so its wall-clock figures
stand; py-spy's own CPU is not the daemon's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.loopback import APP_SECRET, PHONE_NUMBER_ID, TOKEN  # noqa: E402
from tests.fakes.chaos import Daemon  # noqa: E402
from tests.fakes.databases import fresh_database  # noqa: E402
from tests.fakes.meta_webhooks import sign  # noqa: E402
from tests.fakes.meta_webhooks import text as webhook_text  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PROFILE: Path | None = None  # --profile DIR
PIN: int | None = None  # --pin: the core of the measured process
IN_FLIGHT = 200  # webhooks posted at once (Meta's own delivery is concurrent too)
DEBOUNCE = 0.2  # inbox.debounce_seconds of the measured daemon


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def thread_cpu(pid: int) -> Counter[str]:
    """CPU seconds of each of `pid`'s threads, summed by thread name (the writer threads,
    aiosqlite's, the event loop's: where a message's CPU goes)."""
    by_name: Counter[str] = Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                head, rest = f.read().rsplit(")", 1)
        except OSError:  # the thread ended meanwhile
            continue
        fields = rest.split()
        name = "event loop" if tid == str(pid) else head.split("(", 1)[1]
        by_name[name] += (int(fields[11]) + int(fields[12])) / TICK
    return by_name


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pin(pid: int) -> None:
    """`--pin`: every thread of `pid` on the measured core (threads it starts later inherit
    the mask of the thread that starts them)."""
    if PIN is None:
        return
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            os.sched_setaffinity(int(tid), {PIN})


@contextlib.contextmanager
def profiled(pid: int, out: Path | None) -> Iterator[None]:
    """py-spy on `pid` while the block runs (`--profile DIR`): collapsed stacks in `out`."""
    if out is None:
        yield
        return
    spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                            str(pid), "--rate", "250", "--format", "raw", "--nonblocking",
                            "--output", str(out)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)


def start_server(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"{args} did not start: {line!r}")
    return proc, line.split()[1]


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


@dataclass
class Phase:
    messages: int
    cpu: float
    wall: float
    delivered: int
    threads: Counter[str] | None = None  # CPU seconds by thread name over the phase

    @property
    def ms_per_message(self) -> float:
        return self.cpu * 1000 / self.messages

    def split(self) -> str:
        """Each thread's CPU per message, largest first."""
        return ", ".join(f"{name} {s * 1000 / self.messages:.2f}"
                         for name, s in (self.threads or Counter()).most_common() if s > 0)

    @property
    def throughput(self) -> float:
        return self.messages / self.wall


@dataclass
class Paced:
    overheads: list[float]  # seconds, one per message answered
    cpu: float
    missing: int
    threads: Counter[str] | None = None  # CPU seconds by thread name over the round

    def split(self) -> str:
        """Each thread's CPU per message, largest first."""
        n = max(1, len(self.overheads) + self.missing)
        return ", ".join(f"{name} {s * 1000 / n:.2f}"
                         for name, s in (self.threads or Counter()).most_common() if s > 0)

    def pct(self, q: float) -> float:
        ranked = sorted(self.overheads)
        return ranked[min(len(ranked) - 1, int(q * len(ranked)))] * 1000 if ranked else 0.0

    @property
    def ms_per_message(self) -> float:
        return self.cpu * 1000 / max(1, len(self.overheads) + self.missing)


class Driver:
    """Posts signed webhooks and watches the Graph API's counts."""

    def __init__(self, http: aiohttp.ClientSession, graph: str) -> None:
        self.http = http
        self.graph = graph
        self.retried = 0  # webhook deliveries answered with anything but 2xx
        self.answers: Counter[str] = Counter()  # what those got

    async def replies(self, prefix: str) -> int:
        async with self.http.get(f"{self.graph}/stats", params={"prefix": prefix}) as r:
            return int((await r.json())["replies"])

    async def reply_times(self, prefix: str) -> dict[str, list[float]]:
        async with self.http.get(f"{self.graph}/times", params={"prefix": prefix}) as r:
            return dict(await r.json())

    async def post(self, url: str, wa_id: str, body: str, msg_id: str,
                   posted: dict[str, float] | None = None) -> None:
        data = json.dumps(webhook_text(wa_id, body, msg_id=msg_id, name="Cliente")).encode()
        headers = {"Content-Type": "application/json",
                   "X-Hub-Signature-256": sign(data, APP_SECRET)}
        wait, deadline, answer = 0.2, time.monotonic() + 120, "no answer"
        if posted is not None:
            posted[wa_id] = time.monotonic()
        while time.monotonic() < deadline:  # as Meta does: anything but 2xx comes again
            try:
                async with self.http.post(url, data=data, headers=headers) as response:
                    answer = f"HTTP {response.status} {(await response.read())[:200]!r}"
                    if response.status < 300:
                        return
            except aiohttp.ClientError as exc:
                answer = repr(exc)
            self.retried += 1
            self.answers[answer[:120]] += 1
            await asyncio.sleep(wait)
            wait = min(2.0, wait * 2)
        raise RuntimeError(f"webhook {msg_id} never accepted: {answer}")

    async def phase(self, url: str, pid: int, prefix: str, customers: int, round_: int,
                    within: float = 600.0) -> Phase:
        expected = await self.replies(prefix) + customers
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(n: int) -> None:
            async with gate:
                await self.post(url, f"{prefix}{n:08d}", f"hola, pregunta {round_} de {n}",
                                f"wamid.{prefix}R{round_}N{n}")

        pin(pid)
        cpu0, t0, threads0 = cpu_seconds(pid), time.perf_counter(), thread_cpu(pid)
        await asyncio.gather(*(one(n) for n in range(customers)))
        deadline = t0 + within
        while (seen := await self.replies(prefix)) < expected and time.perf_counter() < deadline:
            await asyncio.sleep(0.02)
        wall = time.perf_counter() - t0
        threads = thread_cpu(pid)
        threads.subtract(threads0)
        return Phase(customers, cpu_seconds(pid) - cpu0, wall,
                     customers - (expected - seen), threads)


    async def paced(self, url: str, pid: int, prefix: str, customers: int, round_: int,
                    rate: float, waits: float, within: float = 300.0) -> Paced:
        """One message per customer, one every 1/rate seconds; the overhead of each (see
        the module): reply at Graph − webhook posted − `waits` (model + debounce)."""
        expected = await self.replies(prefix) + customers
        posted: dict[str, float] = {}
        sending: list[asyncio.Task[None]] = []
        pin(pid)
        cpu0, t0, threads0 = cpu_seconds(pid), time.monotonic(), thread_cpu(pid)
        for n in range(customers):
            if (ahead := t0 + n / rate - time.monotonic()) > 0:
                await asyncio.sleep(ahead)
            sending.append(asyncio.create_task(self.post(
                url, f"{prefix}{n:08d}", f"hola, pregunta {round_} de {n}",
                f"wamid.{prefix}R{round_}N{n}", posted)))
        await asyncio.gather(*sending)
        deadline = time.monotonic() + within
        while await self.replies(prefix) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        cpu = cpu_seconds(pid) - cpu0
        threads = thread_cpu(pid)
        threads.subtract(threads0)
        arrived = await self.reply_times(prefix)
        overheads, missing = [], 0
        for wa_id, at in posted.items():
            reply = next((t for t in arrived.get(wa_id, []) if t >= at), None)
            if reply is None:
                missing += 1
            else:
                overheads.append(reply - at - waits)
        return Paced(overheads, cpu, missing, threads)


def daemon_env(workdir: Path, code: Path, model: str, graph: str, tenant: str,
               turns: int, database_url: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WABOT_", "OPENAI_"))}
    env.update({
        "PYTHONPATH": str(code),
        "WABOT_STATE_DIR": str(workdir / "state"),
        "WABOT_TENANT": tenant,
        "WABOT_BUSINESS_FILE": str(code / "config" / "business.example.yaml"),
        "WABOT_LLM__BASE_URL": model, "WABOT_LLM__API_KEY": "bench",
        "WABOT_LLM__MAX_RETRIES": "0", "WABOT_LLM__TIMEOUT": "60",
        "WABOT_WHATSAPP__TRANSPORT": "cloud",
        "WABOT_CLOUD__PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "WABOT_CLOUD__ACCESS_TOKEN": TOKEN,
        "WABOT_CLOUD__APP_SECRET": APP_SECRET,
        "WABOT_CLOUD__VERIFY_TOKEN": "verify-token-for-tests",
        "WABOT_CLOUD__GRAPH_URL": graph + "/v21.0",
        "WABOT_CLOUD__LISTEN_PORT": "0",
        "WABOT_HTTP__PORT": "0",  # the console serves the webhook
        "WABOT_PRESENTER__ENABLED": "false",
        "WABOT_INBOX__DEBOUNCE_SECONDS": "0.2",
        "WABOT_INBOX__MAX_CONCURRENT_TURNS": str(turns),
        "WABOT_MEMORY__INSIGHTS": "false",
    })
    if database_url:
        env["WABOT_DATABASE_URL"] = database_url
    return env


async def measure_wabot(driver: Driver, label: str, code: Path, model: str, graph: str,
                        customers: int, turns: int, prefix: str, rate: float,
                        latency: float, database_url: str = ""
                        ) -> tuple[Phase, Phase, float, Paced | None]:
    # PostgreSQL: a database of its own per run, or the daemon would serve what an earlier
    # run left in the journal (its numbers join this one's fleet).
    with tempfile.TemporaryDirectory(prefix="wabot-bench-") as tmp, \
            (fresh_database("bench_cloud", database_url) if database_url
             else contextlib.nullcontext("")) as database_url:
        workdir = Path(tmp)
        tenant = f"bench{prefix}{int(time.time())}"
        daemon = Daemon(workdir, daemon_env(workdir, code, model, graph, tenant, turns,
                                            database_url))
        daemon.start()
        try:
            await daemon.ready()
            assert daemon.proc is not None
            pid = daemon.proc.pid
            with profiled(pid, PROFILE and PROFILE / f"{prefix}-first.txt"):
                first = await driver.phase(daemon.url, pid, prefix, customers, 1)
            with profiled(pid, PROFILE and PROFILE / f"{prefix}-warm.txt"):
                warm = await driver.phase(daemon.url, pid, prefix, customers, 2)
            paced = None
            if rate:
                await asyncio.sleep(1.0)  # what the warm round left to do (status lines)
                with profiled(pid, PROFILE and PROFILE / f"{prefix}-paced.txt"):
                    paced = await driver.paced(daemon.url, pid, prefix, customers, 3, rate,
                                               latency + DEBOUNCE)
            rss = peak_rss_mb(pid)
        except Exception:
            print(daemon.logfile.read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            daemon.stop()
    return first, warm, rss, paced


async def measure_relay(driver: Driver, model: str, graph: str, customers: int,
                        prefix: str, rate: float, latency: float
                        ) -> tuple[Phase, Phase, float, Paced | None]:
    proc, url = start_server(["-m", "tests.bench.loopback", "relay", "--model", model,
                              "--graph", graph + "/v21.0"])
    hook = url + "/webhooks/whatsapp"
    try:
        first = await driver.phase(hook, proc.pid, prefix, customers, 1)
        warm = await driver.phase(hook, proc.pid, prefix, customers, 2)
        paced = None
        if rate:
            await asyncio.sleep(1.0)
            paced = await driver.paced(hook, proc.pid, prefix, customers, 3, rate, latency)
        rss = peak_rss_mb(proc.pid)
    finally:
        stop(proc)
    return first, warm, rss, paced


async def burst(driver: Driver, name: str, code: Path, model: str, graph: str, turns: int,
                prefix: str, customers: int = 1000) -> str:
    with tempfile.TemporaryDirectory(prefix="wabot-burst-") as tmp:
        workdir = Path(tmp)
        daemon = Daemon(workdir, daemon_env(workdir, code, model, graph, "burst", turns))
        daemon.start()
        try:
            await daemon.ready()
            assert daemon.proc is not None
            phase = await driver.phase(daemon.url, daemon.proc.pid, prefix, customers, 1,
                                       within=300)
            await asyncio.sleep(1.0)  # late replies and duplicates, if any
            async with driver.http.get(f"{driver.graph}/stats",
                                       params={"prefix": prefix}) as r:
                stats = await r.json()
            rss = peak_rss_mb(daemon.proc.pid)
        finally:
            daemon.stop()
        db = sqlite3.connect(workdir / "state" / "wabot.db")
        try:
            statuses = dict(db.execute("SELECT status, count(*) FROM journal GROUP BY status"))
        finally:
            db.close()
    not_answered = sum(n for s, n in statuses.items() if s != "answered")
    return (f"| {name} | {turns:,} | {stats['recipients']:,} / {customers:,} | {stats['duplicates']} | "
            f"{not_answered} ({', '.join(f'{s} {n}' for s, n in sorted(statuses.items()))}) "
            f"| {rss:.0f} MB | {phase.wall:.1f} s |")


Figures = tuple[Phase, Phase, float, Paced | None]


def row(label: str, figures: Figures, floor: Figures) -> str:
    first, warm, rss, _ = figures
    return (f"| {label} | {first.ms_per_message:.2f} ms ({first.ms_per_message / floor[0].ms_per_message:.1f}×) "
            f"| {warm.ms_per_message:.2f} ms ({warm.ms_per_message / floor[1].ms_per_message:.1f}×) "
            f"| {first.throughput:.0f} | {warm.throughput:.0f} msg/s "
            f"| {min(first.delivered, warm.delivered)} | {rss:.0f} MB |")


def paced_row(label: str, figures: Figures, floor: Figures) -> str:
    paced, base = figures[3], floor[3]
    if paced is None or base is None:
        return f"| {label} | – | – | – | – |"
    p50, p99 = paced.pct(0.5), paced.pct(0.99)
    return (f"| {label} | {p50:.1f} ms ({p50 - base.pct(0.5):+.1f}) "
            f"| {p99:.1f} ms ({p99 - base.pct(0.99):+.1f}) | {paced.pct(1.0):.1f} ms "
            f"| {paced.ms_per_message:.2f} ms ({paced.ms_per_message / base.ms_per_message:.1f}×)"
            f" | {len(paced.overheads)} (+{paced.missing} missing) |")


def summary(runs: dict[str, list[Figures]]) -> None:
    """Medians over the repeated runs; ratios against the median relay run."""
    def med(label: str, figure: Callable[[Figures], float]) -> float:
        return statistics.median(figure(f) for f in runs[label])

    relay = "bare relay"
    floor_first = med(relay, lambda f: f[0].ms_per_message)
    floor_warm = med(relay, lambda f: f[1].ms_per_message)
    print(f"\nMedians: {len(runs[relay])} relay runs, "
          f"{max(len(v) for k, v in runs.items() if k != relay)} of each wabot; (×) is the "
          "median against the median relay run")
    print("| | CPU/msg first contact | CPU/msg warm | warm msg/s | peak RSS |")
    print("|---|---|---|---|---|")
    for label in runs:
        first = med(label, lambda f: f[0].ms_per_message)
        warm = med(label, lambda f: f[1].ms_per_message)
        print(f"| {label} | {first:.2f} ms ({first / floor_first:.1f}×) "
              f"| {warm:.2f} ms ({warm / floor_warm:.1f}×) "
              f"| {med(label, lambda f: f[1].throughput):.0f} msg/s "
              f"| {med(label, lambda f: f[2]):.0f} MB |")
    if all(f[3] is not None for v in runs.values() for f in v):
        print("\n| paced | overhead p50 | overhead p99 (worst run) | CPU/msg |")
        print("|---|---|---|---|")
        floor_paced = med(relay, lambda f: f[3].ms_per_message if f[3] else 0.0)
        for label, figures in runs.items():
            p99s = [f[3].pct(0.99) for f in figures if f[3]]
            cpu = med(label, lambda f: f[3].ms_per_message if f[3] else 0.0)
            print(f"| {label} | {med(label, lambda f: f[3].pct(0.5) if f[3] else 0.0):.1f} ms "
                  f"| {statistics.median(p99s):.1f} ms ({max(p99s):.1f}) "
                  f"| {cpu:.2f} ms ({cpu / floor_paced:.1f}×) |")


async def run(args: argparse.Namespace) -> None:
    global PIN
    if args.pin:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2:
            raise SystemExit("--pin needs two cores at least")
        PIN = cores[-1]
        os.sched_setaffinity(0, set(cores[:-1]))  # the servers started below inherit it
    model_proc, model = start_server(["-m", "tests.fakes.openai_server", "--latency",
                                      str(args.latency)])
    graph_proc, graph = start_server(["-m", "tests.bench.loopback", "graph", "--latency",
                                      str(args.graph_latency)])
    results: list[tuple[str, Figures]] = []
    runs: dict[str, list[Figures]] = {}
    prefixes = (f"6{k:04d}" for k in itertools.count())  # one per run: its customers

    def keep(label: str, figures: Figures, floor: Figures) -> None:
        results.append((label, figures))
        runs.setdefault(label.removesuffix(", again"), []).append(figures)
        print(row(label, figures, floor), flush=True)

    try:
        connector = aiohttp.TCPConnector(limit=IN_FLIGHT + 10)
        async with aiohttp.ClientSession(connector=connector) as http:
            driver = Driver(http, graph)
            n = args.customers
            trees = [("wabot", ROOT)] + ([("wabot " + args.compare.name, args.compare)]
                                         if args.compare else [])
            if not args.bursts_only:
                print(f"\n{n:,} customers, model {args.latency * 1000:.0f} ms, "
                      f"max_concurrent_turns {args.turns}"
                      f"{f', the measured process on core {PIN}' if PIN is not None else ''}; "
                      "(×) is the ratio to the relay run before it (for a relay run: to "
                      "the first)")
                print("| | CPU/msg first contact | CPU/msg warm | first contact msg/s | warm "
                      "| replies (of each round) | peak RSS |")
                print("|---|---|---|---|---|---|---|")
                for rep in range(args.repeat + 1):
                    floor = await measure_relay(driver, model, graph, n, next(prefixes),
                                                args.rate, args.latency)
                    keep("bare relay" if rep == 0 else "bare relay, again", floor,
                         runs["bare relay"][0] if runs else floor)  # drift: to the first
                    if rep == args.repeat:
                        break
                    # Each repetition starts with another tree: the daemon that runs right
                    # after the relay is not always the same one.
                    for name, code in trees[rep % len(trees):] + trees[:rep % len(trees)]:
                        keep(f"{name}, SQLite", await measure_wabot(
                            driver, name, code, model, graph, n, args.turns, next(prefixes),
                            args.rate, args.latency), floor)
                        if args.database_url:
                            keep(f"{name}, PostgreSQL", await measure_wabot(
                                driver, name, code, model, graph, n, args.turns,
                                next(prefixes), args.rate, args.latency, args.database_url),
                                floor)
                print(f"webhook deliveries retried: {driver.retried} "
                      f"{driver.answers.most_common(3)}")
                print("\nCPU by thread, ms per message (first contact | warm | paced):")
                for label, (first, warm, _, paced) in results:
                    print(f"- {label}: {first.split()} | {warm.split()} | "
                          f"{paced.split() if paced else '–'}")
                if args.rate:
                    print(f"\nPaced: {args.rate:g} msg/s, one warm message per customer; own "
                          f"overhead = reply at Graph − webhook posted − model "
                          f"{args.latency * 1000:.0f} ms − debounce {DEBOUNCE * 1000:.0f} ms "
                          "(relay: no debounce); (±) is the difference to the relay run "
                          "before it (for a relay run: to the first)")
                    print("| | overhead p50 | overhead p99 | max | CPU/msg | answered |")
                    print("|---|---|---|---|---|---|")
                    floor = results[0][1]
                    for label, figures in results:
                        relay = label.startswith("bare relay")
                        print(paced_row(label, figures, results[0][1] if relay else floor))
                        if relay:  # drift: the relay to the first, wabot to the one before
                            floor = figures
                summary(runs)
            if args.bursts:
                print(f"\nBursts: {1000:,} new customers at once, SQLite")
                print("| | max_concurrent_turns | replies delivered | duplicates | "
                      "not answered (journal) | peak RSS | all replied in |")
                print("|---|---|---|---|---|---|---|")
                for i, (name, code) in enumerate(trees):
                    for k, turns in enumerate(args.bursts):
                        print(await burst(driver, name, code, model, graph, turns,
                                          f"5214{i}{k}"), flush=True)
    finally:
        stop(model_proc)
        stop(graph_proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2, help="model seconds")
    parser.add_argument("--graph-latency", type=float, default=0.0, help="Graph seconds")
    parser.add_argument("--turns", type=int, default=256, help="max_concurrent_turns")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="the PostgreSQL server (a fresh database per run is made there)")
    parser.add_argument("--no-postgres", dest="database_url", action="store_const", const="")
    parser.add_argument("--bursts", type=int, nargs="*", default=[64, 1000, 10000])
    parser.add_argument("--compare", type=Path, default=None,
                        help="another wabot tree, measured side by side")
    parser.add_argument("--bursts-only", action="store_true", help="only the burst runs")
    parser.add_argument("--rate", type=float, default=100.0,
                        help="paced round's messages per second (0: no paced round)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each wabot, interleaved with relay runs; medians at the end")
    parser.add_argument("--pin", action="store_true",
                        help="the measured process on one core, everything else on the others")
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy each wabot round into this folder (non-blocking)")
    args = parser.parse_args()
    global PROFILE
    PROFILE = args.profile
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
