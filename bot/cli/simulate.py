"""Replay a scripted conversation through the whole pipeline on a virtual clock.

Input: JSON lines, each an op with a non-decreasing `at` (seconds from the start). Between
ops the clock moves to the next `at` and everything due by then runs (debounce windows close,
idle agents are evicted, due work runs). Output: one JSON line per action, in order.
New ops register in OPS.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from bot.cli.common import app as cli
from bot.cli.common import fail, run_configured, settings_or_exit
from bot.clock import VirtualClock
from bot.gateway.memory import MemoryGateway
from bot.models import CustomerKey, InboundMessage, MessageKind, Outbound
from bot.phones import PhoneError, parse_typed
from bot.settings import Settings

if TYPE_CHECKING:  # the daemon's parts load when a run starts, not with the CLI
    from bot.app import App
    from bot.llm import LLM

DRAIN_SECONDS = 24 * 3600  # the most virtual time the end of a scenario may take


class ScenarioError(ValueError):
    """A scenario line that cannot be replayed; the message names the line."""


@dataclass
class Run:
    settings: Settings
    out: TextIO
    clock: VirtualClock
    gateway: MemoryGateway
    start: datetime
    llm_factory: Callable[[], LLM] | None = None
    app: App | None = None
    line_no: int = 0
    seq: int = 0
    extras: dict[str, Any] = field(default_factory=dict)

    def at(self) -> float:
        return round((self.clock.now() - self.start).total_seconds(), 3)

    def emit(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps({"at": self.at(), **record}, ensure_ascii=False) + "\n")
        self.out.flush()

    def on_agent(self, event: str, key: CustomerKey) -> None:
        self.emit({"event": event, "customer": key.phone})

    def on_event(self, name: str, data: dict[str, Any]) -> None:
        if name == "message.sent":  # everything the presenter sent
            chat = str(data["chat"])
            self.emit({"to": "+" + chat.split("@", 1)[0], "text": data["text"],
                       "kind": data["kind"]})

    def on_gateway(self, out: Outbound) -> None:
        """Pictures and documents the agent sent (text goes through the presenter)."""
        if out.action in ("image", "document"):
            self.emit({"to": "+" + out.chat.split("@", 1)[0], "media": out.action,
                       "text": out.text})

    async def start_app(self) -> App:
        from bot.app import App

        llm = self.llm_factory() if self.llm_factory else None
        app = App(self.settings, self.gateway, clock=self.clock, llm=llm,
                  on_agent_event=self.on_agent, heartbeat=False)
        app.unit.events.listeners.append(self.on_event)
        await app.start()
        self.app = app
        return app

    async def stop_app(self) -> None:
        if self.app is not None:
            await self.app.stop()
            self.app = None

    @property
    def work(self) -> set[Any]:
        return self.app.unit.inbox.tasks if self.app else set()


Op = Callable[[Run, dict[str, Any]], Awaitable[None]]


def _need_str(op: dict[str, Any], name: str) -> str:
    value = op.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name!r} must be a non-empty string")
    return value


def _phone(op: dict[str, Any], name: str) -> str:
    try:
        return parse_typed(_need_str(op, name))
    except PhoneError as exc:
        raise ValueError(str(exc)) from None


async def op_message(run: Run, op: dict[str, Any]) -> None:
    phone = _phone(op, "from")
    text = op.get("text", "")
    if not isinstance(text, str):
        raise ValueError("'text' must be a string")
    run.seq += 1
    msg = InboundMessage(
        tenant=run.settings.tenant, phone=phone,
        msg_id=str(op.get("id") or f"SIM{run.seq:06d}"), timestamp=run.clock.now(),
        text=text, chat=run.gateway.chat_for(phone), push_name=str(op.get("name", "")))
    await run.gateway.receive(msg)


async def op_advance(run: Run, op: dict[str, Any]) -> None:
    """Nothing more to do: moving the clock to `at` already ran everything due."""


async def op_restart(run: Run, op: dict[str, Any]) -> None:
    await run.stop_app()
    await run.start_app()


OPS: dict[str, Op] = {"message": op_message, "advance": op_advance, "restart": op_restart}


async def op_owner(run: Run, op: dict[str, Any]) -> None:
    """The owner writes in a customer's chat from the phone (human takeover)."""
    phone = _phone(op, "to")
    run.seq += 1
    await run.gateway.receive(InboundMessage(
        tenant=run.settings.tenant, phone=phone,
        msg_id=str(op.get("id") or f"SIM{run.seq:06d}"), timestamp=run.clock.now(),
        text=_need_str(op, "text"), chat=run.gateway.chat_for(phone), from_owner=True))


async def op_voice(run: Run, op: dict[str, Any]) -> None:
    """A voice note; `audio` is a file (relative to the working directory) to transcribe."""
    phone = _phone(op, "from")
    audio = Path(_need_str(op, "audio"))
    try:
        data = await asyncio.to_thread(audio.read_bytes)
    except OSError as exc:
        raise ValueError(f"audio file {audio}: {exc.strerror}") from None
    run.seq += 1
    msg = InboundMessage(
        tenant=run.settings.tenant, phone=phone,
        msg_id=str(op.get("id") or f"SIM{run.seq:06d}"), timestamp=run.clock.now(),
        kind=MessageKind.VOICE, chat=run.gateway.chat_for(phone),
        push_name=str(op.get("name", "")))
    run.gateway.media[msg.msg_id] = data
    await run.gateway.receive(msg)


OPS.update(owner=op_owner, voice=op_voice)


MAX_AT = 10 * 365.25 * 86400


def parse_line(line_no: int, raw: str, last_at: float) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    try:
        op = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"line {line_no}: not JSON ({exc.msg})") from None
    if not isinstance(op, dict):
        raise ScenarioError(f"line {line_no}: expected a JSON object")
    if op.get("op") not in OPS:
        raise ScenarioError(f"line {line_no}: unknown op {op.get('op')!r} "
                            f"(known: {', '.join(OPS)})")
    at = op.get("at")
    if at is None:
        raise ScenarioError(f"line {line_no}: 'at' is missing: the seconds from the start "
                            "when this line happens (0, 1.5, 3600…)")
    # JSON as Python reads it allows NaN and Infinity; 1e20 s overflows the virtual clock.
    if (isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at)
            or not 0 <= at <= MAX_AT):
        raise ScenarioError(f"line {line_no}: 'at' must be a number of seconds from 0 to "
                            f"{MAX_AT:.0f} (ten years)")
    if at < last_at:
        raise ScenarioError(f"line {line_no}: 'at' {at} is earlier than the line before ({last_at})")
    return op


def _check_fields(op: dict[str, Any]) -> None:
    """What each op needs, checked before anything runs."""
    kind = op["op"]
    if kind in ("message", "voice"):
        _phone(op, "from")
    if kind == "owner":
        _phone(op, "to")
        _need_str(op, "text")
    if kind == "message" and not isinstance(op.get("text", ""), str):
        raise ValueError("'text' must be a string")
    if kind == "voice" and not Path(_need_str(op, "audio")).is_file():
        raise ValueError(f"audio file {op['audio']} does not exist")


def load_scenario(lines: Iterable[str]) -> list[tuple[int, dict[str, Any]]]:
    """Every line parsed and checked, so a mistake on line 90 stops the run before line 1
    costs a model call; raises ScenarioError naming the line."""
    ops: list[tuple[int, dict[str, Any]]] = []
    last_at = 0.0
    for line_no, raw in enumerate(lines, 1):
        op = parse_line(line_no, raw, last_at)
        if op is None:
            continue
        try:
            _check_fields(op)
        except ValueError as exc:
            raise ScenarioError(f"line {line_no}: {exc}") from None
        last_at = float(op["at"])
        ops.append((line_no, op))
    return ops


async def simulate(settings: Settings, lines: Iterable[str], out: TextIO, *,
                   start: datetime, llm_factory: Callable[[], LLM] | None = None) -> None:
    """Replay `lines`; raises ScenarioError naming the first bad line, before running any."""
    ops = load_scenario(lines)
    clock = VirtualClock(start)
    run = Run(settings=settings, out=out, clock=clock, gateway=MemoryGateway(clock),
              start=start, llm_factory=llm_factory)
    run.gateway.listeners.append(run.on_gateway)
    await run.start_app()
    try:
        for line_no, op in ops:
            await clock.run_until(start + timedelta(seconds=float(op["at"])), run.work)
            try:
                await OPS[op["op"]](run, op)
            except ValueError as exc:
                raise ScenarioError(f"line {line_no}: {exc}") from None
        await clock.wait(run.work, DRAIN_SECONDS)
    finally:
        await run.stop_app()


def simulation_tenant(base: str) -> str:
    """A tenant of its own for each run, so a replay never touches live customers."""
    return f"{base}-sim-{uuid.uuid4().hex[:8]}"[:64]


async def erase_tenant(settings: Settings) -> int:
    """Erase every customer of `settings.tenant` from every store; returns how many."""
    from bot.parts import build_memory
    from bot.stores.customers import CustomerStore
    from bot.stores.db import Database

    db = Database(settings.sql_url)
    memory = build_memory(settings, db)
    customers = CustomerStore(db)
    try:
        await memory.start()
        found = await customers.all(settings.tenant, limit=1_000_000)
        for c in found:
            key = CustomerKey(settings.tenant, c.phone)
            await memory.forget(key)
            await customers.forget(key)
        from bot.stores.alerts import AlertStore

        await AlertStore(db, settings.tenant).forget_tenant()  # the run's turn-failed alerts
        from bot.followups import erase_tenant_followups

        await asyncio.to_thread(erase_tenant_followups, settings.sql_url, settings.tenant)
        from bot.knowledge.library import index_for

        index = index_for(db)  # the run's copy of the catalog
        await index.start()
        await index.forget_tenant(settings.tenant)
        return len(found)
    finally:
        await memory.close()
        await db.close()


def decode_lines(data: bytes) -> list[str]:
    """The scenario's lines; a line that is not UTF-8 is a ScenarioError naming it."""
    lines: list[str] = []
    for line_no, raw in enumerate(data.splitlines(), 1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ScenarioError(f"line {line_no}: not UTF-8 (byte {exc.start + 1} of the "
                                "line); save the scenario as UTF-8") from None
    return lines


async def run_file(settings: Settings, scenario: Path, out_path: Path | None,
                   start: datetime, *, keep: bool = False) -> None:
    lines = decode_lines(await asyncio.to_thread(scenario.read_bytes))
    load_scenario(lines)  # a bad line stops here, before any store is touched
    settings = settings.model_copy(update={"tenant": simulation_tenant(settings.tenant)})
    out = out_path.open("w", encoding="utf-8") if out_path else sys.stdout
    try:
        await simulate(settings, lines, out, start=start)
    finally:
        if out_path:
            out.close()
        if not keep:
            await erase_tenant(settings)
        else:
            print(f"kept tenant {settings.tenant}; inspect it with: WABOT_TENANT="
                  f"{settings.tenant} wabot customers (or history +E164, followups)",
                  file=sys.stderr)


@cli.command("simulate")
def simulate_command(
    scenario: Annotated[Path, typer.Argument(help="Scenario, JSON lines (see docs/getting-started.md).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the output here "
                                             "instead of stdout.")] = None,
    start: Annotated[str | None, typer.Option(help="Virtual start time, ISO 8601 "
                                              "(default: now, UTC).")] = None,
    keep: Annotated[bool, typer.Option(help="Keep the run's customers in the database "
                                       "(under their own tenant) for inspection.")] = False,
) -> None:
    """Replay a scripted conversation through the whole pipeline on a virtual clock.

    Uses the configured stores and LLM endpoint, under a tenant of its own per run so live
    customers are never touched; the run's data is erased at the end unless --keep.
    """
    if not scenario.is_file():
        raise fail(f"scenario {scenario} does not exist", 2)
    settings = settings_or_exit()
    try:
        started = datetime.fromisoformat(start) if start else datetime.now(UTC)
    except ValueError:
        raise fail(f"--start {start!r} is not an ISO 8601 time", 2) from None
    # The same instant in UTC, as the stores and the daemon keep time: an offset such as
    # -06:00 is honoured, not carried into day boundaries.
    started = (started.replace(tzinfo=UTC) if started.tzinfo is None
               else started.astimezone(UTC))
    try:
        run_configured(run_file(settings, scenario, out, started, keep=keep))
    except ScenarioError as exc:
        raise fail(f"{scenario}: {exc}", 2) from None
