"""What the console page and the API read and do: one tenant's view of the daemon.

Every query is keyed by this daemon's tenant; a phone number or id of another tenant is
simply not found. The App builds one `Console` from its parts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol

from sqlalchemy import String, cast, func, or_, select

from bot.clock import Clock
from bot.events.alerts import Alerts
from bot.events.hub import Events
from bot.events.outbox import Outbox
from bot.fleet.changes import CustomerChanges
from bot.fleet.numbers import NumberStore
from bot.followups.store import FollowUp, followup_id, parse_followup_id
from bot.gateway.base import DeliveryUnknown, Gateway, GatewayError, NotDelivered
from bot.models import CustomerKey, MemoryMessage, Role, Stage
from bot.phones import PhoneError, customer_key_error, parse_customer, whatsapp_forms
from bot.pipeline.takeover import FOREVER, is_paused, pause, pause_text, resume
from bot.settings import Settings
from bot.stores.customer_rows import customer_of
from bot.stores.customers import CUSTOMERS, Customer, CustomerStore
from bot.stores.memory_base import MemoryStore, message_to_dict
from bot.stores.outbound import OutboundStore
from bot.stores.runs import RunStore
from bot.web import delivery, linking, times
from bot.web.i18n import ENGLISH, Said, Texts
from bot.web.metrics import Metrics
from bot.web.stats import Stats


class FollowUps(Protocol):
    """What the console lists and cancels: the number's scheduler, or its job table read
    directly for a number this process does not run (`bot.followups.store.PendingJobs`)."""

    async def pending(self, phone: str | None = None, limit: int | None = None,
                      kinds: list[str] | None = None) -> list[FollowUp]: ...

    async def cancel(self, key: CustomerKey, kind: str | None = None) -> int: ...


class NotFound(Said, LookupError):
    """Nothing of this tenant by that phone or id; the message says what was asked."""


class BadRequest(Said, ValueError):
    """Input that cannot be used; the message says how to fix it."""


class InvalidNumber(BadRequest):
    """A number typed for sending that names no one for sure (no country code, `x12`…): 422,
    refused with the reason the CLI gives for the same input."""


def phone_of(text: str) -> str:
    """`+5215512345678`, `5215512345678` or `%2B52…` (already decoded) → E.164."""
    raw = text.strip()
    if raw.isdigit():
        raw = "+" + raw
    try:
        return parse_customer(raw)  # `lid:<digits>`, `g:<group>`: customers with no number
    except PhoneError as exc:
        raise BadRequest(key="not_phone", text=text) from exc


def customer_json(c: Customer, now: datetime) -> dict[str, Any]:
    return {
        "phone": c.phone, "name": c.name, "stage": c.stage, "opted_out": c.opted_out,
        "invalid_id": customer_key_error(c.phone),  # a bad row stored before #24.9: marked
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
    followups: FollowUps | None = None
    live: Any = None  # () -> bot.ops.status.Live: turns, failures, agents cached
    zone: tzinfo = UTC  # the business's timezone: "today" is its local day
    language: str = "en"  # the business profile's: its pages speak it (`bot.web.i18n`)
    numbers: NumberStore | None = None  # the fleet's numbers; None: on the customers' database
    numbers_changed: Callable[[], None] | None = None  # a number added or removed (Node.wake)
    # Tells the node serving the number of a pause or resume written here (PostgreSQL).
    changes: CustomerChanges | None = None

    def __post_init__(self) -> None:
        if self.numbers is None:
            self.numbers = NumberStore(self.customers.db, self.clock)

    @property
    def tenant(self) -> str:
        return self.settings.tenant

    def key(self, phone: str) -> CustomerKey:
        return CustomerKey(self.tenant, phone_of(phone))

    # --- connection ----------------------------------------------------------------------

    def connection(self) -> dict[str, Any]:
        """The WhatsApp connection as systemd's STATUS line says it, and the QR if shown."""
        return linking.connection(self.gateway)

    def qr_png(self) -> bytes | None:
        return linking.qr_png(self.gateway)

    async def pair_code(self, phone: str) -> dict[str, Any]:
        """A pair code for the business number `phone`, as an alternative to the QR."""
        return await linking.request_pair_code(self.gateway, phone)

    # --- today, the 30 days, the funnel ----------------------------------------------------

    @property
    def stats(self) -> Stats:
        return Stats(self.customers.db, self.settings, self.clock, self.zone)

    async def today(self) -> dict[str, Any]:
        """Today's numbers from the database (`bot.web.stats`), and what only the running
        daemon knows: agents cached, follow-ups pending."""
        out = await self.stats.today()
        live = self.live() if self.live is not None else None
        if not self.settings.runs.enabled and live is not None:  # no run log to count
            out["turns"], out["failures"] = live.turns, live.failures
        out["agents_cached"] = live.agents_cached if live else 0
        out["followups_pending"] = (len(await self.followups.pending())
                                    if self.followups is not None else 0)
        return out

    async def days(self, n: int = 30) -> list[dict[str, Any]]:
        return await self.stats.days(n)

    async def funnel(self) -> dict[str, int]:
        return await self.stats.funnel()

    # --- customers -------------------------------------------------------------------------

    async def list_customers(self, *, stage: str | None = None, q: str = "", offset: int = 0,
                             limit: int = 50) -> tuple[list[dict[str, Any]], int]:
        c = CUSTOMERS.c
        where = [c.tenant == self.tenant]
        if stage:
            if stage not in {s.value for s in Stage}:
                raise BadRequest(key="unknown_stage", stage=stage,
                                 stages=", ".join(s.value for s in Stage))
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
        return [customer_json(customer_of(r), now) for r in rows], total

    async def customer(self, phone: str) -> dict[str, Any]:
        key = self.key(phone)
        found = await self.customers.get(key)
        if found is None:
            raise NotFound(key="no_customer_check", phone=key.phone)
        profile = await self.memory.profile(key)
        out = customer_json(found, self.clock.now())
        out["pause"] = pause_text(found.paused_until, self.clock.now(), self.zone)
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
            raise NotFound(key="no_customer", phone=key.phone)
        lines = await self.memory.recent(key, limit)
        runs = {r["at"]: r["id"] for r in await self.runs.for_customer(key, limit)}
        out = []
        for m in lines:
            item = message_to_dict(m)
            item["run_id"] = runs.get(m.at.isoformat()) if m.role is Role.AGENT else None
            out.append(item)
        if self.settings.whatsapp.transport != "cloud":  # only the Cloud API reports them
            return [dict(item, delivery=None) for item in out]
        since = lines[0].at if lines else None
        sent = await OutboundStore(self.customers.db, self.tenant).recent(
            limit=limit * 4, phone=key.phone)
        return delivery.annotate(out, [e for e in sent if since is None or e.created_at >= since])

    async def set_pause(self, phone: str, seconds: float | None) -> dict[str, Any]:
        key = self.key(phone)
        now = self.clock.now()
        until = FOREVER if seconds is None else now + timedelta(seconds=seconds)
        if await self.customers.get(key) is None:  # a typo must not make a phantom customer
            raise NotFound(key="no_customer", phone=key.phone)
        await pause(self.customers, key, until, now)
        await self._changed(key)
        return await self.customer(key.phone)

    async def resume(self, phone: str) -> dict[str, Any]:
        key = self.key(phone)
        if not await resume(self.customers, key):
            raise NotFound(key="no_customer", phone=key.phone)
        await self._changed(key)
        return await self.customer(key.phone)

    async def _changed(self, key: CustomerKey) -> None:
        """The node serving the number may run elsewhere: it drops its cached copy."""
        if self.changes is not None:
            await self.changes.mark(key)

    async def recipient(self, typed: str) -> str:
        """The customer a typed number means, resolved as the CLI resolves it
        (`bot.cli.resolve`): digits without a country code are refused, not read as one
        (issue #24: `5512345678` was sent to +55 1234-5678 in Brazil), and a number typed
        as dialled finds the customer WhatsApp knows under another form (`+521…`)."""
        try:
            phone = parse_customer(typed)
        except PhoneError as exc:
            raise InvalidNumber(str(exc)) from None
        if not phone.startswith("+"):  # `lid:…`, `g:…`: a key wabot showed
            return phone
        for form in whatsapp_forms(phone):  # as typed first, then the likeliest others
            if await self.customers.get(CustomerKey(self.tenant, form)) is not None:
                return form
        return phone

    async def send(self, phone: str, text: str) -> dict[str, Any]:
        """Send as the business: out through WhatsApp, stored as the owner's line, and the
        agent paused as when the owner writes from the phone.

        A send that fails changes nothing (issue #24: it used to leave the agent paused 12 h
        and, for a new number, a phantom customer): `SendFailed` says why in plain words.
        With WhatsApp offline it fails at once instead of after the transport's wait."""
        text = text.strip()
        if not text:
            raise BadRequest(key="empty_text")
        if len(text) > 4096:
            raise BadRequest(key="too_long")
        key = self.key(phone)
        self._online()
        now = self.clock.now()
        customer = await self.customers.get(key)
        until = now + timedelta(hours=self.settings.takeover.pause_hours)
        before = customer.paused_until if customer else None
        extend = customer is not None and (before is None or before < until)
        if extend:  # first: a turn running now holds its reply instead of talking over ours
            await self.customers.set_paused_until(key, until)
        chat = customer.wa_jid if customer and customer.wa_jid else self.gateway.chat_for(
            key.phone)
        try:
            msg_id = await self.gateway.send_text(chat, text)
        except GatewayError as exc:
            if extend:
                await self.customers.set_paused_until(key, before)
            raise _not_sent(exc) from exc
        if customer is None:  # someone who never wrote: a customer from now on, paused
            await pause(self.customers, key, until, now)
        await self.memory.append(key, [MemoryMessage(Role.OWNER, text, now, kind="owner")])
        await self.customers.add_usage(key, at=now)
        self.events.emit("message.sent", {"phone": key.phone, "kind": "owner", "text": text,
                                          "msg_id": msg_id})
        paused_until = before if before is not None and before >= until else until
        return {"to": key.phone, "msg_id": msg_id, "paused_until": paused_until.isoformat()}

    def _online(self) -> None:
        """Refuse at once while WhatsApp is not connected: the transport would wait for the
        connection (30 s on WhatsApp Web) and the owner would watch a page hang."""
        connected = self.gateway.connected
        if connected is not None and not connected.is_set():
            raise SendFailed(key="offline", status=self.connection()["status"])

    # --- follow-ups, runs ------------------------------------------------------------------

    async def followups_of(self, phone: str | None = None) -> list[dict[str, Any]]:
        if self.followups is None:
            return []
        return [{"id": followup_id(f.phone, f.kind), "phone": f.phone, "kind": f.kind,
                 "reason": f.reason, "due_at": f.due_at.isoformat(),
                 "run_at": f.run_at.isoformat() if f.run_at else None}
                for f in await self.followups.pending(phone, limit=500)]

    def followup_time(self, followup: dict[str, Any], t: Texts = ENGLISH) -> str:
        """When a listed follow-up goes out, as `wabot followups` says it (the business's
        time, moved into the sending hours)."""
        due = datetime.fromisoformat(followup["run_at"] or followup["due_at"])
        policy = getattr(self.followups, "policy", None)  # the scheduler's sending hours
        if policy is None:
            return times.shown(due, self.zone)
        return times.followup(due, policy.business.tz, policy.hours, t)

    async def cancel_followup(self, fid: str) -> None:
        parsed = parse_followup_id(fid, self.tenant)
        if parsed is None:
            raise BadRequest(key="not_followup_id", fid=fid)
        if self.followups is None:
            raise NotFound(key="followups_off")
        phone, kind = parsed
        key = self.key(phone)
        if not await self.followups.cancel(key, kind):
            raise NotFound(key="no_followup", fid=fid)

    async def run(self, run_id: int) -> dict[str, Any]:
        found = await self.runs.get(self.tenant, run_id)
        if found is None:
            raise NotFound(key="no_run", id=run_id)
        return found


class SendFailed(Said, RuntimeError):
    """Nothing was sent (WhatsApp not connected, or it refused the message) and nothing
    changed; the message says why in the owner's words."""


def _not_sent(exc: GatewayError) -> SendFailed:
    if isinstance(exc, DeliveryUnknown):
        return SendFailed(key="delivery_unknown")
    if isinstance(exc, NotDelivered):
        return SendFailed(key="not_delivered")
    return SendFailed(key="refused", why=str(exc))
