"""The daemon under kill -9: `wabot run` on the Cloud transport, driven over real HTTP.

Customers send signed webhooks at a steady rate (each waits for the answer to its previous
message, as people do); the daemon is killed with SIGKILL at random moments and restarted
at once; webhook senders retry while it is down, as Meta does. At the end every message
must have been answered exactly once and the journal must hold nothing unanswered.

Used by `tests/test_chaos.py` (small) and `tests/bench/bench_chaos.py` (the full figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.fakes import meta_webhooks as meta
from tests.fakes.graph_server import Call, FakeGraph
from tests.fakes.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
_TOKEN = re.compile(r"\bc(\d+)m(\d+)\b")
_LISTENING = re.compile(r"console listening on (http://[\d.:]+)")


@dataclass
class Figures:
    messages: int = 0
    kills: int = 0
    answered: int = 0
    lost: int = 0  # accepted by the webhook (200) and never answered
    duplicated: int = 0
    stuck: int = 0  # journal lines still "received" after the final, graceful stop
    webhook_retries: int = 0
    latencies: list[float] = field(default_factory=list)
    twice: list[str] = field(default_factory=list)
    restarts: list[float] = field(default_factory=list)  # seconds from SIGKILL to listening  # the messages answered more than once
    seconds: float = 0.0
    log: str = ""

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def summary(self) -> str:
        return (f"messages {self.messages}, kills {self.kills}, answered {self.answered}, "
                f"lost {self.lost}, duplicated {self.duplicated}, stuck {self.stuck}, "
                f"webhook retries {self.webhook_retries}, time to reply p50 "
                f"{self.percentile(50):.2f} s, p99 {self.percentile(99):.2f} s, "
                f"restart {sum(self.restarts) / max(1, len(self.restarts)):.1f} s, "
                f"run {self.seconds:.1f} s")


class Daemon:
    """`wabot run` as a subprocess, killed and restarted on demand."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.address_file = workdir / "state" / "webhook-address"
        self.proc: subprocess.Popen[bytes] | None = None
        self.logfile = workdir / "daemon.log"
        self._log_from = 0
        self.url = ""  # empty while down: senders retry
        # `tests.fakes.standin_go` in place of `bot`: WhatsApp Web numbers on the stand-in
        self.command = [sys.executable, "-m", "bot", "run"]

    def start(self) -> None:
        self.address_file.unlink(missing_ok=True)
        self.url = ""
        self._log_from = self.logfile.stat().st_size if self.logfile.exists() else 0
        with self.logfile.open("ab") as log:
            self.proc = subprocess.Popen(self.command, cwd=self.workdir, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)

    def _address(self) -> str:
        """Where this start listens: the console's server (it serves the webhook), or
        the transport's own when the console is off."""
        with self.logfile.open("rb") as log:
            log.seek(self._log_from)
            found = _LISTENING.search(log.read().decode(errors="replace"))
        if found:
            return found.group(1)
        if self.address_file.is_file():
            return self.address_file.read_text().strip()
        return ""

    async def ready(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while not (address := self._address()):
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"wabot run exited with {self.proc.returncode}:\n"
                                   + self.logfile.read_text()[-3000:])
            if time.monotonic() > deadline:
                raise TimeoutError("wabot run did not start listening")
            await asyncio.sleep(0.02)
        self.url = address + "/webhooks/whatsapp"

    def kill(self) -> None:
        assert self.proc is not None
        self.url = ""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def daemon_env(workdir: Path, llm: FakeOpenAI, graph: FakeGraph) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WABOT_", "OPENAI_"))}
    env.update({
        "WABOT_STATE_DIR": str(workdir / "state"),
        "WABOT_TENANT": "chaos",
        "WABOT_BUSINESS_FILE": str(ROOT / "config" / "business.example.yaml"),
        "WABOT_LLM__BASE_URL": llm.base_url, "WABOT_LLM__API_KEY": "test",
        "WABOT_LLM__MAX_RETRIES": "0",
        "WABOT_WHATSAPP__TRANSPORT": "cloud",
        "WABOT_CLOUD__PHONE_NUMBER_ID": graph.phone_number_id,
        "WABOT_CLOUD__ACCESS_TOKEN": graph.token,
        "WABOT_CLOUD__APP_SECRET": meta.APP_SECRET,
        "WABOT_CLOUD__VERIFY_TOKEN": meta.VERIFY_TOKEN,
        "WABOT_CLOUD__GRAPH_URL": graph.graph_url,
        "WABOT_CLOUD__LISTEN_PORT": "0",
        "WABOT_HTTP__PORT": "0",  # the console serves the webhook
        "WABOT_PRESENTER__ENABLED": "false",
        "WABOT_INBOX__DEBOUNCE_SECONDS": "0",
        "WABOT_MEMORY__INSIGHTS": "false",
        "WABOT_FOLLOWUPS__ENABLED": "false",
        "WABOT_STOP_GRACE_SECONDS": "10",
        "WABOT_LOG_LEVEL": "INFO",
    })
    return env


class Replies:
    """Replies seen by the fake Graph API, by message token, with their arrival times."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.at: dict[str, list[float]] = defaultdict(list)
        self.events: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.lock = threading.Lock()

    def on_call(self, call: Call) -> None:  # the fake server's thread
        if call.body.get("type") != "text":
            return
        now = time.monotonic()
        for match in _TOKEN.finditer(call.body["text"]["body"]):
            token = match.group(0)
            with self.lock:
                self.at[token].append(now)
            self.loop.call_soon_threadsafe(self.events[token].set)


async def run_chaos(workdir: Path, *, customers: int = 300, per_customer: int = 3,
                    kills: int = 5, rate: float = 30.0, llm_latency: float = 0.2,
                    seed: int = 11, reply_timeout: float = 120.0,
                    drain: float = 60.0) -> Figures:
    rng = random.Random(seed)
    figures = Figures(messages=customers * per_customer)
    loop = asyncio.get_running_loop()
    replies = Replies(loop)
    with FakeOpenAI(latency=llm_latency) as llm, FakeGraph() as graph:
        graph.listeners.append(replies.on_call)
        daemon = Daemon(workdir, daemon_env(workdir, llm, graph))
        started = time.monotonic()
        daemon.start()
        await daemon.ready()
        t0 = time.monotonic()
        span = figures.messages / rate
        moments = sorted(rng.uniform(0.05 * span, 0.9 * span) for _ in range(kills))
        sent_at: dict[str, float] = {}
        attempts: list[int] = []

        async def customer(n: int, http: httpx.AsyncClient) -> None:
            wa_id = f"52155{n:08d}"
            for k in range(per_customer):
                slot = t0 + (k * customers + n) / rate
                await asyncio.sleep(max(0.0, slot - time.monotonic()))
                token = f"c{n}m{k}"
                sent_at[token] = time.monotonic()
                attempts.append(await meta.deliver(
                    http, lambda: daemon.url,
                    meta.text(wa_id, f"{token} hola", msg_id=f"wamid.C{n}M{k}",
                              name=f"Cliente {n}"), give_up=600))
                # A person waits for the answer before writing again; a reply lost for good
                # shows up below, not as a stalled run.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(replies.events[token].wait(), reply_timeout)

        async def killer() -> None:
            for at in moments:
                await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
                killed = time.monotonic()
                daemon.kill()
                figures.kills += 1
                daemon.start()
                await daemon.ready()
                figures.restarts.append(time.monotonic() - killed)

        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        async with httpx.AsyncClient(timeout=10, limits=limits) as http:
            try:
                await asyncio.gather(killer(), *(customer(n, http) for n in range(customers)))
                # Give the last replies (and any second answer) time to arrive.
                deadline = time.monotonic() + drain
                while time.monotonic() < deadline and not all(
                        replies.events[t].is_set() for t in sent_at):
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)
            finally:
                code = daemon.stop()
        figures.seconds = time.monotonic() - started
        figures.log = daemon.logfile.read_text(errors="replace")
        if code != 0:
            figures.log += f"\n(wabot run exited with {code})"
        for token, first in sent_at.items():
            seen = replies.at.get(token, [])
            if not seen:
                figures.lost += 1
                continue
            figures.answered += 1
            figures.duplicated += len(seen) - 1
            if len(seen) > 1:
                figures.twice.append(token)
            figures.latencies.append(seen[0] - first)
        assert len(sent_at) == figures.messages, "a webhook was never accepted"
        figures.webhook_retries = sum(attempts) - len(attempts)
        db = sqlite3.connect(workdir / "state" / "wabot.db")
        try:
            figures.stuck = db.execute(
                "SELECT count(*) FROM journal WHERE status = 'received'").fetchone()[0]
        finally:
            db.close()
    return figures
