"""The offline backlog after downtime, on the virtual clock (the acceptance scenario):

    python tests/bench/bench_backlog.py [--customers 200] [--messages 500]

`--messages` inbound messages from `--customers` customers, all delivered as WhatsApp's
offline backlog at connect (`backlog=True`, then the sync completes); a tenth of the
customers wrote only more than `pacing.backlog_max_age_hours` ago. Real SQLite, the real
openai client against the fake OpenAI-wire server, the whole App with the memory gateway.
Prints: messages, replies, the most sends in any 60 s, stale messages, the time to drain
(virtual time: load-independent), and whether replies went oldest first. The test
`tests/pipeline/later/test_backlog.py` runs the same function and asserts on it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bot.clock import VirtualClock  # noqa: E402
from bot.gateway.memory import MemoryGateway  # noqa: E402
from bot.models import InboundMessage  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI  # noqa: E402
from tests.fakes.pipeline import START, Pipeline, make_settings  # noqa: E402


@dataclass
class Figures:
    messages: int
    customers: int
    replies: int  # text sends to customers
    answered_customers: int
    max_in_60s: int
    cap: int
    stale: int
    stale_customers_answered: int
    answered_twice: int
    drain: timedelta
    first_reply_order_inversions: int  # customer pairs answered younger-before-older
    journal: dict[str, int]
    alerts: list[str]

    def lines(self) -> list[str]:
        return [
            f"messages            {self.messages} from {self.customers} customers",
            f"replies             {self.replies} sends to {self.answered_customers} customers",
            f"max sends in 60 s   {self.max_in_60s} (cap {self.cap})",
            f"stale               {self.stale} messages, never answered "
            f"(answered anyway: {self.stale_customers_answered})",
            f"answered twice      {self.answered_twice}",
            f"time to drain       {self.drain} (virtual)",
            f"order inversions    {self.first_reply_order_inversions} (first replies, "
            "younger customer before older)",
            f"journal             {self.journal}",
            f"owner alerts        {len(self.alerts)}: {self.alerts[:1]}",
        ]


def max_in_any_minute(times: list[datetime]) -> int:
    """The most sends in any window [t, t + 60 s)."""
    times = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + timedelta(seconds=60):
            j += 1
        best = max(best, j - i)
    return best


def backlog_messages(p: Pipeline, customers: int, messages: int, max_age_h: float,
                     rng: random.Random) -> list[InboundMessage]:
    """Every customer writes at least once; a tenth only longer ago than the max age."""
    now = p.clock.now()
    phones = [f"+52155{i:08d}" for i in range(customers)]
    old = set(phones[: customers // 10])
    owners = phones + [rng.choice(phones) for _ in range(messages - customers)]
    out = []
    for n, phone in enumerate(owners):
        hours = (rng.uniform(max_age_h + 1, max_age_h + 12) if phone in old
                 else rng.uniform(0.2, max_age_h - 1))
        msg = p.message(phone, f"mensaje {n} de {phone[-4:]}", msg_id=f"B{n:05d}",
                        backlog=True)
        msg.timestamp = now - timedelta(hours=hours)
        out.append(msg)
    # WhatsApp hands the backlog over per chat, oldest first within a chat (not globally).
    out.sort(key=lambda m: (m.phone, m.timestamp))
    return out


async def scenario(db_url: str, state_dir: Path, server: FakeOpenAI, tenant: str,
                   customers: int = 200, messages: int = 500, seed: int = 12) -> Figures:
    settings = make_settings(db_url, state_dir, server, tenant,
                             followups={"enabled": False}, knowledge={"enabled": False},
                             memory={"insights": False})
    clock = VirtualClock(START)
    p = Pipeline(settings, clock, MemoryGateway(clock))
    await p.app.start()
    try:
        batch = backlog_messages(p, customers, messages, settings.pacing.backlog_max_age_hours,
                                 random.Random(seed))
        for msg in batch:
            await p.app.unit.intake(msg)
        began = clock.now()
        await p.app.unit.backlog.complete()  # what OfflineSyncCompleted does through the gateway
        await p.settle()
        await p.app.unit.alerts.drain()
        return await measure(p, batch, began)
    finally:
        await p.app.stop()


async def measure(p: Pipeline, batch: list[InboundMessage], began: datetime) -> Figures:
    sent = [o for o in p.gateway.sent if o.action == "text" and o.at is not None]
    chats = {m.phone: m.chat for m in batch}
    max_age = timedelta(hours=p.settings.pacing.backlog_max_age_hours)
    stale_phones = {ph for ph in chats
                    if all(began - m.timestamp > max_age for m in batch if m.phone == ph)}
    oldest = {ph: min(m.timestamp for m in batch if m.phone == ph and began - m.timestamp
                      <= max_age) for ph in chats if ph not in stale_phones}
    first: dict[str, datetime] = {}
    per_chat: dict[str, int] = {}
    for o in sent:
        first.setdefault(o.chat, o.at)  # type: ignore[arg-type]
        per_chat[o.chat] = per_chat.get(o.chat, 0) + 1
    answered = [ph for ph in chats if chats[ph] in first]
    by_reply = sorted((first[chats[ph]], oldest[ph]) for ph in answered if ph in oldest)
    inversions = sum(1 for (_, a), (_, b) in itertools.pairwise(by_reply) if b < a)
    journal: dict[str, int] = {}
    for status in ("answered", "stale", "received", "failed", "held"):
        journal[status] = await p.app.unit.customers.journal_count(
            p.settings.tenant, began - timedelta(days=30), status)
    return Figures(
        messages=len(batch), customers=len(chats), replies=len(sent),
        answered_customers=len(answered), max_in_60s=max_in_any_minute([o.at for o in sent
                                                                         if o.at]),
        cap=p.settings.pacing.messages_per_minute, stale=journal["stale"],
        stale_customers_answered=sum(1 for ph in stale_phones if chats[ph] in first),
        answered_twice=sum(1 for ph in answered if per_chat[chats[ph]] > 1),
        drain=(max(o.at for o in sent if o.at) - began) if sent else timedelta(0),
        first_reply_order_inversions=inversions, journal=journal,
        alerts=[a.get("text", "") for a in p.app.unit.alerts.recent])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--messages", type=int, default=500)
    args = parser.parse_args()

    async def run() -> Figures:
        with tempfile.TemporaryDirectory() as tmp, FakeOpenAI() as server:
            return await scenario(f"sqlite:///{Path(tmp) / 'wabot.db'}", Path(tmp), server,
                                  "bench", args.customers, args.messages)

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    print("\n".join(asyncio.run(run()).lines()))


if __name__ == "__main__":
    main()
