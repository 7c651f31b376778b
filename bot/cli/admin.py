"""`wabot pause | resume | status | doctor`: the owner steering the daemon from a shell.

`pause` and `resume` write the shared SQL database: they work whether or not the daemon
runs, and a running daemon reads the pause with the next message of that chat.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer

from bot.cli.common import app, fail, require_data, settings_or_exit, state
from bot.clock import SystemClock, parse_duration
from bot.models import CustomerKey
from bot.settings import Settings

EXIT_BAD_INPUT = 2
EXIT_NOT_RUNNING = 3  # as `systemctl status` for a stopped unit
EXIT_UNAVAILABLE = 69
T = TypeVar("T")

PhoneArg = Annotated[str, typer.Argument(
    help="The customer's number, E.164 (+52 1 55 …), or lid:<digits> / g:<group>.",
    show_default=False)]
def _key(settings: Settings, phone: str) -> CustomerKey:
    from bot.cli.resolve import customer_key

    return customer_key(settings, phone)


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run the command's work; an unreachable database is a message, not a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return asyncio.run(work)
    except (SQLAlchemyError, OSError) as exc:
        raise fail(f"the database could not be used: {type(exc).__name__}: {exc}",
                   EXIT_UNAVAILABLE) from None


async def set_pause(settings: Settings, key: CustomerKey, until: datetime | None,
                    create: bool = False) -> bool | None:
    """Pause (`until` set) or resume (None) a chat in the configured database; False when
    the customer is unknown (pausing creates them only with `create`)."""
    import bot.ops.status  # noqa: F401  (its table is created with the others)
    from bot.fleet.changes import CustomerChanges
    from bot.gateway.web.session import prepare_state_dir
    from bot.pipeline.takeover import pause, resume
    from bot.stores.customers import CustomerStore
    from bot.stores.db import Database
    from bot.stores.stamps import mark_changed

    if settings.database_url is None:
        prepare_state_dir(settings.state_dir)
    db = Database(settings.sql_url)
    try:
        await db.create_all()
        customers = CustomerStore(db)
        if until is None:
            changed = await resume(customers, key)
        elif not create and await customers.get(key) is None:
            changed = False  # a typo would make a phantom customer, paused for ever
        else:
            await pause(customers, key, until, datetime.now(UTC))
            changed = True
        if changed and not db.is_sqlite:  # the node serving the number may be elsewhere
            await CustomerChanges(db, SystemClock()).mark(key)
    finally:
        await db.close()
    if changed:  # the running daemon's cached agent reloads before its next reply
        mark_changed(settings.state_dir, key)
    return changed


@app.command("pause")
def pause_command(
    phone: PhoneArg,
    for_: Annotated[str | None, typer.Option(
        "--for", help="How long: 30m, 2h, 1d, 1h30m. Default: until `wabot resume`.",
        show_default=False)] = None,
    create: Annotated[bool, typer.Option(
        "--create", help="Pause a number that has not written yet (its first message too).")]
    = False,
) -> None:
    """Stop the agent answering one customer (you answer from the phone)."""
    from bot.pipeline.takeover import FOREVER

    settings = settings_or_exit()
    key = _key(settings, phone)
    try:
        until = datetime.now(UTC) + parse_duration(for_) if for_ else FOREVER
    except ValueError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    if _run(set_pause(settings, key, until, create)) is False:
        raise fail(f"{key.phone} is not a customer of tenant {settings.tenant}: check the "
                   "number (`wabot customers`), or pass --create to pause a number before it "
                   "writes", 1)
    from bot.business import local_time
    from bot.cli.memory import local_zone

    when = ("until resumed (`wabot resume`)" if until >= FOREVER
            else f"until {local_time(until, local_zone(settings))}")
    typer.echo(f"paused {key.phone} {when}: the agent does not answer this chat "
               "(a running daemon sees it with the next message)")


@app.command("resume")
def resume_command(phone: PhoneArg) -> None:
    """Let the agent answer a paused customer again (from their next message)."""
    settings = settings_or_exit()
    key = _key(settings, phone)
    done = _run(set_pause(settings, key, None))
    if done is False:
        raise fail(f"{key.phone} is not a customer of tenant {settings.tenant}", 1)
    if done is None:
        typer.echo(f"{key.phone} was not paused: the agent already answers them")
        return
    typer.echo(f"resumed {key.phone}: the agent answers their next message")


async def _status(settings: Settings) -> Any:
    from bot.ops.status import read_status
    from bot.stores.db import Database

    db = Database(settings.sql_url)
    try:
        return await read_status(db, settings, datetime.now(UTC))
    finally:
        await db.close()


@app.command("status")
def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Is the daemon running, as which number, and what it did today. Exit 3: not running."""
    from bot.ops.status import format_status, status_json

    settings = settings_or_exit()
    require_data(settings, EXIT_NOT_RUNNING)
    report = _run(_status(settings))
    from bot.cli.memory import local_zone

    typer.echo(json.dumps(status_json(report)) if as_json
               else format_status(report, local_zone(settings)))
    if not report.running:
        raise typer.Exit(EXIT_NOT_RUNNING)


@app.command("doctor")
def doctor_command(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each server.")] = 10.0,
) -> None:
    """Check the configuration, files, databases, LLM endpoint and WhatsApp session."""
    from bot.ops.doctor import check_config, diagnose, report
    from bot.ops.logs import setup_logging

    setup_logging(level="ERROR", environ=os.environ)  # the checklist is the output
    settings, first = check_config(state.config)
    checks = [first]
    if settings is not None:
        checks += asyncio.run(diagnose(settings, timeout))
    typer.echo(report(checks))
    if not all(c.ok for c in checks):
        raise typer.Exit(1)
