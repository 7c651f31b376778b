"""`wabot` commands for the memory area: history, customers, export, forget.

They work on the configured stores directly (the daemon may be running: SQLite is in WAL
mode, PostgreSQL and MongoDB are shared), never through the WhatsApp transport.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from bot.cli.common import app, fail, require_data, settings_or_exit
from bot.models import CustomerKey, MemoryMessage, Stage
from bot.phones import customer_key_error
from bot.settings import Settings
from bot.stores.customers import Customer, CustomerStore
from bot.stores.db import Database
from bot.stores.memory_base import MemoryStore
from bot.stores.privacy import Holder
from bot.text import for_terminal, one_line

EXIT_NOT_FOUND = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: a database could not be reached

PhoneArg = Annotated[str, typer.Argument(help="The customer's number, E.164 (+52 1 55 …).",
                                         show_default=False)]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Stores:
    db: Database
    customers: CustomerStore
    memory: MemoryStore


def holders(settings: Settings, stores: Stores) -> list[Holder]:
    """Other places holding customer data, for `export` and `forget`: the follow-up job
    store (pending jobs and the sent log), which works without a running scheduler, the
    run log (every model call of their turns), replies still owed to them, the Cloud API's
    delivery statuses, webhook events not delivered yet, and owner alerts about them.
    `tests/regressions/test_forget_leaves_the_customer_behind.py` walks every table."""
    from bot.events.outbox import export_events, forget_events
    from bot.followups import privacy_holder
    from bot.stores.alerts import AlertStore
    from bot.stores.deliveries import DeliveryStore
    from bot.stores.outbound import OutboundStore
    from bot.stores.runs import RunStore

    db, tenant = stores.db, settings.tenant
    runs, owed = RunStore(db), DeliveryStore(db, tenant)
    sent, alerts = OutboundStore(db, tenant), AlertStore(db, tenant)
    return [privacy_holder(settings.sql_url, db),
            Holder("runs", runs.export, runs.forget, "the log of the agent's model calls"),
            Holder("undelivered_replies", owed.export, owed.forget, "replies still owed"),
            Holder("delivery_statuses", sent.export, sent.forget,
                   "delivery statuses of messages sent"),
            Holder("webhook_events", lambda key: export_events(db, key),
                   lambda key: forget_events(db, key), "webhook events not sent yet"),
            Holder("owner_alerts", alerts.export, alerts.forget, "owner alerts about them")]


async def erase(settings: Settings, key: CustomerKey) -> bool:
    """What `wabot forget` does once confirmed: the customer out of every store. False
    when the daemon kept the SQLite write-ahead log from being folded in."""
    from bot.stores.privacy import checkpoint, forget_customer

    async with open_stores(settings, erasing=True) as s:
        extra = [h.forget for h in holders(settings, s)]
        await forget_customer(key, s.customers, s.memory, extra)
        return await checkpoint(s.db)


@asynccontextmanager
async def open_stores(settings: Settings, *, erasing: bool = False) -> AsyncIterator[Stores]:
    from bot.gateway.web.session import prepare_state_dir
    from bot.parts import build_memory  # every table wabot has is declared by now
    from bot.stores.privacy import erase_for_real

    if settings.database_url is None:
        prepare_state_dir(settings.state_dir)  # owner-only, as the daemon makes it
    db = Database(settings.sql_url)
    if erasing:
        erase_for_real(db)
    memory = build_memory(settings, db)
    try:
        await db.create_all()
        await memory.start()
        yield Stores(db, CustomerStore(db), memory)
    finally:
        await memory.close()
        await db.close()


def _run(settings: Settings, work: Coroutine[Any, Any, T]) -> T:
    """Run a command's work; an unreachable database is a message, not a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    unreachable: tuple[type[BaseException], ...] = (SQLAlchemyError, OSError)
    if settings.mongodb_url is not None:
        from bot.stores.memory_mongo import MemoryBackendUnavailable

        unreachable = (*unreachable, MemoryBackendUnavailable)
    try:
        return asyncio.run(work)
    except unreachable as exc:
        raise fail(f"the database could not be used: {type(exc).__name__}: {exc}",
                   EXIT_UNAVAILABLE) from None


def customer_key(settings: Settings, phone: str) -> CustomerKey:
    from bot.cli import resolve

    return resolve.customer_key(settings, phone)


def local_zone(settings: Settings) -> tzinfo:
    """The business's timezone (what the owner reads times in); UTC when it has none."""
    from bot.business import BusinessError
    from bot.parts import load_business_for

    try:
        return load_business_for(settings).tz
    except (BusinessError, OSError):
        return UTC


def when(at: datetime | None, zone: tzinfo, abbreviation: bool = True) -> str:
    from bot.business import local_time

    if at is None:
        return "-"
    return local_time(at, zone) if abbreviation else f"{at.astimezone(zone):%Y-%m-%d %H:%M}"


# --- history -------------------------------------------------------------------------------


def who(m: MemoryMessage) -> str:
    if m.kind == "followup":
        return f"{m.role.value} (follow-up)"
    return m.role.value


def transcript(messages: Sequence[MemoryMessage], zone: tzinfo) -> list[str]:
    """One block per message: time, who, text; continuation lines indented under the text."""
    width = max((len(who(m)) for m in messages), default=0)
    lines: list[str] = []
    for m in messages:
        head = f"{when(m.at, zone, abbreviation=False)}  {who(m):<{width}}  "  # zone: header
        body = for_terminal(m.text).splitlines() or [""]
        lines.append(head + body[0])
        lines.extend(" " * len(head) + rest for rest in body[1:])
    return lines


@app.command()
def history(
    phone: PhoneArg,
    last: Annotated[int, typer.Option("--last", "-n", min=0,
                                      help="Show the last N messages (0: all).")] = 200,
) -> None:
    """Print a customer's conversation: times, who wrote (customer, agent, owner, note), text."""
    settings = settings_or_exit()
    require_data(settings, EXIT_NOT_FOUND)
    key = customer_key(settings, phone)
    zone = local_zone(settings)

    async def work() -> tuple[Customer | None, int, list[MemoryMessage]]:
        async with open_stores(settings) as s:
            total = await s.memory.count(key)
            shown = await s.memory.recent(key, last or max(total, 1))
            return await s.customers.get(key), total, shown

    customer, total, shown = _run(settings, work())
    if customer is None and not total:
        raise fail(f"no customer {key.phone} in tenant {key.tenant}", EXIT_NOT_FOUND)
    name = shown_name(customer.name) if customer and customer.name else "(no name)"
    stage = customer.stage if customer else "-"
    more = f", the last {len(shown)} shown" if len(shown) < total else ""
    typer.echo(f"{key.phone} · {name} · {stage} · {total} messages{more} · times in {zone}")
    typer.echo("")
    for line in transcript(shown, zone):
        typer.echo(line)


# --- customers -----------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header).rstrip(), *(fmt.format(*r).rstrip() for r in rows)]


def shown_name(name: str) -> str:
    """A push name for one cell: the customer chose it, escape sequences included."""
    return one_line(for_terminal(name), 40)


def customer_row(c: Customer, zone: tzinfo, now: datetime) -> list[str]:
    from bot.pipeline.takeover import FOREVER

    flags = []
    if customer_key_error(c.phone) is not None:  # stored before #24.9: shown, marked
        flags.append("not a WhatsApp number: wabot forget it")
    if c.opted_out:
        flags.append("opted out")
    if c.paused_until is not None and c.paused_until > now:
        flags.append("paused until resumed" if c.paused_until >= FOREVER
                     else f"paused until {when(c.paused_until, zone)}")
    return [c.phone, shown_name(c.name) or "-", c.stage, when(c.last_inbound, zone), str(c.msgs_in),
            str(c.msgs_out), ", ".join(flags)]


@app.command()
def customers(
    stage: Annotated[Stage | None, typer.Option(help="Only customers in this stage.",
                                                case_sensitive=False)] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, most recent first.")]
    = 1000,
) -> None:
    """List customers, most recently in contact first."""
    settings = settings_or_exit()
    require_data(settings, EXIT_NOT_FOUND)
    zone = local_zone(settings)

    async def work() -> list[Customer]:
        async with open_stores(settings) as s:
            return await s.customers.all(settings.tenant, stage=stage, limit=limit)

    found = _run(settings, work())
    if not found:
        typer.echo("no customers" + (f" in stage {stage.value}" if stage else ""))
        return
    now = datetime.now(UTC)
    header = ["PHONE", "NAME", "STAGE", "LAST MESSAGE", "IN", "OUT", "FLAGS"]
    for line in table(header, [customer_row(c, zone, now) for c in found]):
        typer.echo(line)
    typer.echo(f"\n{len(found)} customer{'s' if len(found) != 1 else ''} · times in {zone}")


# --- export and forget ---------------------------------------------------------------------


@app.command()
def export(
    phone: PhoneArg,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the JSON here "
                                             "instead of stdout.")] = None,
) -> None:
    """Print, as JSON, everything wabot holds on a customer (a data-access request)."""
    from bot.stores.privacy import export_customer

    settings = settings_or_exit()
    require_data(settings, EXIT_NOT_FOUND)
    key = customer_key(settings, phone)

    async def work() -> dict[str, Any] | None:
        async with open_stores(settings) as s:
            data = await export_customer(key, s.customers, s.memory, holders(settings, s))
        if data is not None:
            data["exported_at"] = datetime.now(UTC).isoformat()
        return data

    data = _run(settings, work())
    if data is None:
        raise fail(f"nothing is held on {key.phone} in tenant {key.tenant}", EXIT_NOT_FOUND)
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)


@app.command()
def forget(
    phone: PhoneArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
    = False,
) -> None:
    """Erase everything held on a customer, in every store (asks first)."""
    from bot.stores.privacy import journal_lines
    from bot.stores.stamps import mark_changed

    settings = settings_or_exit()
    require_data(settings, EXIT_NOT_FOUND)
    key = customer_key(settings, phone)

    async def count() -> tuple[bool, int, int, list[str]]:
        async with open_stores(settings) as s:
            found = await s.customers.get(key) is not None
            return (found, await s.memory.count(key),
                    len(await journal_lines(s.customers, key)),
                    [h.shown or h.name for h in holders(settings, s)])

    found, messages, journaled, others = _run(settings, count())
    if not yes:
        what = (f"{key.phone}: their customer record, {messages} messages of history, "
                f"what the agent remembers about them, {journaled} received messages "
                f"waiting or answered, and any {', '.join(others)}"
                if found or messages or journaled else
                f"{key.phone} (nothing found; erase any leftovers anyway)")
        typer.confirm(f"Erase everything held on {what}? This cannot be undone", abort=True)

    clean = _run(settings, erase(settings, key))
    mark_changed(settings.state_dir, key)  # a running daemon drops its cached agent
    typer.echo(f"forgot {key.phone}: {messages} messages, {journaled} journal lines")
    if not clean:
        typer.echo("note: the daemon has the database open; the erased rows leave the "
                   "SQLite write-ahead log at its next checkpoint", err=True)
