"""What the console page and the API read and do: one tenant's view of the daemon.

Every query is keyed by this daemon's tenant; a phone number or id of another tenant is
simply not found. The App builds one `Console` from its parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import String, cast, func, or_, select

from bot.clock import Clock
from bot.events.alerts import Alerts
from bot.events.hub import Events
from bot.events.outbox import Outbox
from bot.followups.ports import Scheduling
from bot.gateway.base import Gateway, GatewayError
from bot.models import CustomerKey, MemoryMessage, Role, Stage
from bot.phones import PhoneError, mask, parse_customer
from bot.pipeline.takeover import FOREVER, is_paused, pause, pause_text, resume
from bot.settings import Settings
from bot.stores.customers import CUSTOMERS, JOURNAL, USAGE, Customer, CustomerStore, utc_day
from bot.stores.memory_base import MemoryStore, message_to_dict
from bot.stores.runs import RunStore
from bot.web.metrics import Metrics


class NotFound(LookupError):
    """Nothing of this tenant by that phone or id; the message says what was asked."""


class BadRequest(ValueError):
    """Input that cannot be used; the message says how to fix it."""


def phone_of(text: str) -> str:
    """`+5215512345678`, `5215512345678` or `%2B52…` (already decoded) → E.164."""
    raw = text.strip()
    if raw.isdigit():
        raw = "+" + raw
    try:
        return parse_customer(raw)  # `lid:<digits>`, `g:<group>`: customers with no number
    except PhoneError as exc:
        raise BadRequest(f"{text!r} is not a phone number: use E.164 (+5215512345678) "
                         "or its digits") from exc


def followup_id(phone: str, kind: str) -> str:
    return f"{phone.removeprefix('+')}-{kind}"


def customer_json(c: Customer, now: datetime) -> dict[str, Any]:
    return {
        "phone": c.phone, "name": c.name, "stage": c.stage, "opted_out": c.opted_out,
        "paused": is_paused(c, now),
        "paused_until": c.paused_until.isoformat() if is_paused(c, now) and c.paused_until
        else None,
        "first_contact": c.first_contact.isoformat(), "last_contact": c.last_contact.isoformat(),
        "messages_in": c.msgs_in, "messages_out": c.msgs_out,
        "tokens_in": c.tokens_in, "tokens_out": c.tokens_out,
    }


@dataclass(slots=True)
class Console:
    settings: Settings
    clock: Clock
    gateway: Gateway
    customers: CustomerStore
    memory: MemoryStore
    runs: RunStore
    events: Events
    alerts: Alerts
    outbox: Outbox
    metrics: Metrics
    followups: Scheduling | None = None
    live: Any = None  # () -> bot.ops.status.Live: turns, failures, agents cached

    @property
    def tenant(self) -> str:
        return self.settings.tenant

    def key(self, phone: str) -> CustomerKey:
        return CustomerKey(self.tenant, phone_of(phone))

    # --- connection ----------------------------------------------------------------------

    def connection(self) -> dict[str, Any]:
        """The WhatsApp connection as systemd's STATUS line says it, and the QR if shown."""
        connected = getattr(self.gateway, "connected", None)
        is_up = bool(connected.is_set()) if connected is not None else True
        own = getattr(self.gateway, "connected_as", None)
        status = getattr(self.gateway, "status", None)
        if not isinstance(status, str) or not status:
            status = f"connected as {mask(own)}" if is_up and own else (
                "connected" if is_up else "not connected")
        qr: Path | None = getattr(self.gateway, "qr_png_path", None)
        return {"connected": is_up, "connected_as": mask(own) if isinstance(own, str) and own
                else None, "status": status,
                "qr": bool(qr is not None and not is_up and qr.is_file())}

    def qr_png(self) -> bytes | None:
        qr: Path | None = getattr(self.gateway, "qr_png_path", None)
        if qr is None or not qr.is_file():
            return None
        return qr.read_bytes()

    # --- today, the 30 days, the funnel ----------------------------------------------------

    async def today(self) -> dict[str, Any]:
        now = self.clock.now()
        midnight = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), UTC)
        db = self.customers.db
        async with db.connect() as conn:
            msgs_in = int((await conn.execute(select(func.count()).select_from(JOURNAL).where(
                JOURNAL.c.tenant == self.tenant, JOURNAL.c.received_at >= midnight,
                JOURNAL.c.from_owner.is_(False)))).scalar_one())
            row = (await conn.execute(select(
                func.coalesce(func.sum(USAGE.c.msgs_out), 0),
                func.coalesce(func.sum(USAGE.c.tokens_in), 0),
                func.coalesce(func.sum(USAGE.c.tokens_out), 0)).where(
                    USAGE.c.tenant == self.tenant, USAGE.c.day == utc_day(now)))).one()
            backlog = int((await conn.execute(select(func.count()).select_from(JOURNAL).where(
                JOURNAL.c.tenant == self.tenant, JOURNAL.c.status == "received"))).scalar_one())
        msgs_out, tok_in, tok_out = map(int, row)
        live = self.live() if self.live is not None else None
        pending = len(await self.followups.pending()) if self.followups is not None else 0
        return {
            "messages_in": msgs_in, "messages_out": msgs_out,
            "turns": live.turns if live else 0, "failures": live.failures if live else 0,
            "tokens_in": tok_in, "tokens_out": tok_out, "cost_usd": round(self._cost(
                tok_in, tok_out), 6),
            "agents_cached": live.agents_cached if live else 0,
            "followups_pending": pending, "journal_backlog": backlog,
        }

    def _cost(self, tokens_in: int, tokens_out: int) -> float:
        p = self.settings.llm
        return (tokens_in * p.price_in_per_million + tokens_out * p.price_out_per_million) / 1e6

    async def days(self, n: int = 30) -> list[dict[str, Any]]:
        """Messages in/out and cost per UTC day, oldest first, `n` days to today."""
        today = self.clock.now().astimezone(UTC).date()
        first = today - timedelta(days=n - 1)
        start = datetime.combine(first, datetime.min.time(), UTC)
        out: dict[str, dict[str, Any]] = {
            (first + timedelta(days=i)).isoformat(): {"messages_in": 0, "messages_out": 0,
                                                       "cost_usd": 0.0} for i in range(n)}
        async with self.customers.db.connect() as conn:
            rows = (await conn.execute(select(
                USAGE.c.day, func.sum(USAGE.c.msgs_out), func.sum(USAGE.c.tokens_in),
                func.sum(USAGE.c.tokens_out)).where(
                    USAGE.c.tenant == self.tenant, USAGE.c.day >= first.isoformat())
                .group_by(USAGE.c.day))).all()
            for day, m_out, t_in, t_out in rows:
                if day in out:
                    out[day]["messages_out"] = int(m_out or 0)
                    out[day]["cost_usd"] = round(self._cost(int(t_in or 0), int(t_out or 0)), 6)
            received = (await conn.execute(select(JOURNAL.c.received_at).where(
                JOURNAL.c.tenant == self.tenant, JOURNAL.c.received_at >= start,
                JOURNAL.c.from_owner.is_(False)))).scalars().all()
        for at in received:
            day = utc_day(at)
            if day in out:
                out[day]["messages_in"] += 1
        return [{"day": d, **v} for d, v in out.items()]

    async def funnel(self) -> dict[str, int]:
        async with self.customers.db.connect() as conn:
            rows = (await conn.execute(select(CUSTOMERS.c.stage, func.count()).where(
                CUSTOMERS.c.tenant == self.tenant).group_by(CUSTOMERS.c.stage))).all()
        counts = {s.value: 0 for s in Stage}
        counts.update({str(stage): int(n) for stage, n in rows})
        return counts

    # --- customers -------------------------------------------------------------------------

    async def list_customers(self, *, stage: str | None = None, q: str = "", offset: int = 0,
                             limit: int = 50) -> tuple[list[dict[str, Any]], int]:
        c = CUSTOMERS.c
        where = [c.tenant == self.tenant]
        if stage:
            if stage not in {s.value for s in Stage}:
                raise BadRequest(f"unknown stage {stage!r}: use "
                                 f"{', '.join(s.value for s in Stage)}")
            where.append(c.stage == stage)
        if q.strip():
            like = f"%{q.strip().lower()}%"
            digits = "".join(ch for ch in q if ch.isdigit())
            terms = [func.lower(c.name).like(like)]
            if digits:
                terms.append(cast(c.phone, String).like(f"%{digits}%"))
            where.append(or_(*terms))
        async with self.customers.db.connect() as conn:
            total = int((await conn.execute(
                select(func.count()).select_from(CUSTOMERS).where(*where))).scalar_one())
            rows = (await conn.execute(select(CUSTOMERS).where(*where)
                                       .order_by(c.last_contact.desc(), c.id.desc())
                                       .offset(offset).limit(limit))).mappings().all()
        now = self.clock.now()
        return [customer_json(Customer.model_validate(dict(r)), now) for r in rows], total

    async def customer(self, phone: str) -> dict[str, Any]:
        key = self.key(phone)
        found = await self.customers.get(key)
        if found is None:
            raise NotFound(f"no customer {key.phone} for this business: check the number "
                           "(E.164, e.g. +5215512345678)")
        profile = await self.memory.profile(key)
        out = customer_json(found, self.clock.now())
        out["pause"] = pause_text(found.paused_until, self.clock.now())
        out["memory"] = {
            "summary": profile.summary,
            "facts": [{"key": f.key, "value": f.value, "category": f.category}
                      for f in profile.facts.values()],
            "stages": [{"from": s.from_stage.value if s.from_stage else None,
                        "to": s.to_stage.value, "reason": s.reason, "at": s.at.isoformat()}
                       for s in profile.stages],
        }
        out["followups"] = await self.followups_of(key.phone)
        return out

    async def messages(self, phone: str, limit: int = 200) -> list[dict[str, Any]]:
        """The conversation, oldest first; agent lines carry the id of their run."""
        key = self.key(phone)
        if await self.customers.get(key) is None:
            raise NotFound(f"no customer {key.phone} for this business")
        lines = await self.memory.recent(key, limit)
        runs = {r["at"]: r["id"] for r in await self.runs.for_customer(key, limit)}
        out = []
        for m in lines:
            item = message_to_dict(m)
            item["run_id"] = runs.get(m.at.isoformat()) if m.role is Role.AGENT else None
            out.append(item)
        return out

    async def set_pause(self, phone: str, seconds: float | None) -> dict[str, Any]:
        key = self.key(phone)
        now = self.clock.now()
        until = FOREVER if seconds is None else now + timedelta(seconds=seconds)
        await pause(self.customers, key, until, now)
        return await self.customer(key.phone)

    async def resume(self, phone: str) -> dict[str, Any]:
        key = self.key(phone)
        if not await resume(self.customers, key):
            raise NotFound(f"no customer {key.phone} for this business")
        return await self.customer(key.phone)

    async def send(self, phone: str, text: str) -> dict[str, Any]:
        """Send as the business: out through WhatsApp, stored as the owner's line, and the
        agent paused as when the owner writes from the phone."""
        text = text.strip()
        if not text:
            raise BadRequest("text is empty: write the message to send")
        if len(text) > 4096:
            raise BadRequest("text is longer than 4096 characters: split it")
        key = self.key(phone)
        now = self.clock.now()
        customer = await self.customers.get(key)
        until = now + timedelta(hours=self.settings.takeover.pause_hours)
        if customer is None or not customer.paused_until or customer.paused_until < until:
            await pause(self.customers, key, until, now)  # first: a running turn is held
        customer = await self.customers.get(key)
        chat = customer.wa_jid if customer and customer.wa_jid else self.gateway.chat_for(
            key.phone)
        try:
            msg_id = await self.gateway.send_text(chat, text)
        except GatewayError as exc:
            raise SendFailed(f"WhatsApp did not take the message: {exc}") from exc
        await self.memory.append(key, [MemoryMessage(Role.OWNER, text, now, kind="owner")])
        await self.customers.add_usage(key, at=now)
        self.events.emit("message.sent", {"phone": key.phone, "kind": "owner", "text": text,
                                          "msg_id": msg_id})
        return {"to": key.phone, "msg_id": msg_id, "paused_until": (
            customer.paused_until.isoformat() if customer and customer.paused_until else None)}

    # --- follow-ups, runs ------------------------------------------------------------------

    async def followups_of(self, phone: str | None = None) -> list[dict[str, Any]]:
        if self.followups is None:
            return []
        return [{"id": followup_id(f.phone, f.kind), "phone": f.phone, "kind": f.kind,
                 "reason": f.reason, "due_at": f.due_at.isoformat(),
                 "run_at": f.run_at.isoformat() if f.run_at else None}
                for f in await self.followups.pending(phone, limit=500)]

    async def cancel_followup(self, fid: str) -> None:
        digits, _, kind = fid.partition("-")
        if not digits.isdigit() or not kind:
            raise BadRequest(f"{fid!r} is not a follow-up id (digits-kind, as listed by "
                             "GET /api/v1/followups)")
        if self.followups is None:
            raise NotFound("follow-ups are switched off (followups.enabled)")
        key = self.key(digits)
        if not await self.followups.cancel(key, kind):
            raise NotFound(f"no pending follow-up {fid}")

    async def run(self, run_id: int) -> dict[str, Any]:
        found = await self.runs.get(self.tenant, run_id)
        if found is None:
            raise NotFound(f"no run {run_id} for this business")
        return found


class SendFailed(RuntimeError):
    """The transport refused the message (WhatsApp not connected…)."""
