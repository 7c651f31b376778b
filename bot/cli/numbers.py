"""`wabot numbers add | list | show | remove`: the numbers a deployment serves, as rows.

They write the shared SQL database and work whether or not a daemon runs: the nodes look
at the numbers every few seconds and start or stop them. Secrets are given only as the
names of environment variables.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from bot.cli.common import EXIT_CONFIG, app, fail, require_data, settings_or_exit
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.fleet.numbers import NumberStore
    from bot.fleet.roster import Entry, Roster

T = TypeVar("T")
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 69

numbers_app = typer.Typer(help="The WhatsApp numbers this deployment serves (many per "
                          "process, several processes on one PostgreSQL).",
                          no_args_is_help=True)
app.add_typer(numbers_app, name="numbers")

KeyArg = Annotated[str, typer.Argument(help="The number's key, e.g. shop-north.",
                                       show_default=False)]
EnvOpt = Annotated[str, typer.Option(metavar="NAME", show_default=False)]


async def _open(settings: Settings, work: Callable[[NumberStore], Awaitable[T]]) -> T:
    import bot.fleet.tables  # noqa: F401  (its tables are created with the others)
    from bot.clock import SystemClock
    from bot.fleet.numbers import NumberStore
    from bot.gateway.web.session import prepare_state_dir
    from bot.stores.db import Database

    if settings.database_url is None:
        prepare_state_dir(settings.state_dir)
    db = Database(settings.sql_url)
    try:
        await db.create_all()
        return await work(NumberStore(db, SystemClock()))
    finally:
        await db.close()


def _run(settings: Settings, work: Callable[[NumberStore], Awaitable[T]]) -> T:
    """Run the work on the numbers; every failure is one line and an exit code."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.fleet.numbers import NumberError
    from bot.stores.db import DatabaseError

    try:
        return asyncio.run(_open(settings, work))
    except NumberError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    except DatabaseError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    except (SQLAlchemyError, OSError) as exc:
        raise fail(f"the database could not be used: {type(exc).__name__}: {exc}",
                   EXIT_UNAVAILABLE) from None


async def _roster(store: NumberStore, key: str | None = None) -> Roster:
    from bot.fleet.admin import NumberNotFound
    from bot.fleet.roster import read_roster

    rows = await store.all()
    if key is not None:
        rows = [row for row in rows if row.key == key]
        if not rows:
            raise NumberNotFound(f"no number {key} (`wabot numbers list` shows them)")
    return await read_roster(store.db, rows)


@numbers_app.command("add")
def add(
    key: KeyArg,
    transport: Annotated[str, typer.Option(
        help="web: WhatsApp Web (link with a QR or pair code); cloud: Meta's Cloud API.")]
    = "web",
    phone_number_id: Annotated[str, typer.Option(
        help="Cloud API: the number's id (Meta's dashboard: WhatsApp → API Setup).",
        show_default=False)] = "",
    access_token_env: EnvOpt = "",
    app_secret_env: EnvOpt = "",
    verify_token_env: EnvOpt = "",
    business_file: Annotated[Path | None, typer.Option(
        help="Its business profile (YAML; default: the configured one).",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the number as JSON.")] = False,
) -> None:
    """Add a number: every `wabot run` on the database starts it (one serves it, the others
    stand by; docs/numbers.md).

    Cloud API secrets are never given as values: --access-token-env, --app-secret-env and
    --verify-token-env name the environment variables that hold them on the nodes (each
    left out: the node's configured cloud.* value).
    """
    from bot.fleet.admin import NewNumber, add_number, next_steps, notes_for
    from bot.fleet.roster import Entry, entry_json

    settings = settings_or_exit()
    new = NewNumber(key=key, transport=transport, phone_number_id=phone_number_id,
                    access_token_env=access_token_env, app_secret_env=app_secret_env,
                    verify_token_env=verify_token_env,
                    business_file=str(business_file) if business_file else "")
    row = _run(settings, lambda store: add_number(store, new, settings))
    if as_json:
        typer.echo(json.dumps(entry_json(Entry(row)), ensure_ascii=False))
        return
    for note in notes_for(row, settings, os.environ):
        typer.echo(f"note: {note}", err=True)
    typer.echo(next_steps(row, settings))


@numbers_app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Every number: transport, state, the node serving it, seconds left on its lease."""
    from bot.fleet.roster import entry_json, lease_text

    settings = settings_or_exit()
    require_data(settings)
    roster = _run(settings, _roster)
    if as_json:
        for entry in roster.entries:
            typer.echo(json.dumps(entry_json(entry), ensure_ascii=False))
        return
    if not roster.entries:
        typer.echo("no numbers yet: `wabot numbers add KEY` (a running daemon registers "
                   "its configured number at start)")
        return
    rows = [("KEY", "TRANSPORT", "STATE", "OWNER", "LEASE")] + [
        (e.row.key, e.row.transport, e.row.state, e.owner or "—", lease_text(e))
        for e in roster.entries]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False))
                   + "  " + r[4])


def _show_lines(entry: Entry, settings: Settings) -> list[str]:
    from bot.fleet.admin import qr_file
    from bot.fleet.roster import lease_text, public_settings

    row, node = entry.row, entry.node
    lines = [f"number        {row.key}",
             f"transport     {row.transport}",
             f"state         {row.state}" + (f" · {row.state_line}" if row.state_line else "")]
    shown = public_settings(row.settings or {})
    for section, values in shown.items():
        items = values.items() if isinstance(values, dict) else [("", values)]
        for name, value in items:
            lines.append(f"setting       {section}{'.' + name if name else ''} = {value}")
    lines.append(f"business      {row.business_file or 'the configured profile'}")
    if entry.owner is None:
        lines.append("owner         none yet (no node has taken it)")
    else:
        where = f" · pid {node.pid} on {node.host}" if node else " (node gone)"
        held = "holds it" if entry.held else "its lease lapsed"
        lines.append(f"owner         {entry.owner}{where} · {held}")
    lines.append(f"lease         epoch {entry.epoch} · {lease_text(entry)}")
    if row.transport == "web" and row.state == "linking":
        qr = qr_file(settings, row.key)
        here = "" if qr.is_file() else " (on the node that serves it)"
        lines.append(f"link it       scan the QR in {qr}{here}")
        if node and node.console_url and entry.held:
            lines.append(f"              or on that node's console: {node.console_url}")
    lines.append(f"added         {row.created_at:%Y-%m-%d %H:%M} UTC · updated "
                 f"{row.updated_at:%Y-%m-%d %H:%M} UTC")
    return lines


@numbers_app.command("show")
def show(
    key: KeyArg,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """One number: its settings (secrets as variable names), owner node, lease epoch."""
    from bot.fleet.roster import entry_json

    settings = settings_or_exit()
    require_data(settings)
    entry = _run(settings, lambda store: _roster(store, key)).entries[0]
    if as_json:
        typer.echo(json.dumps(entry_json(entry), ensure_ascii=False))
        return
    typer.echo("\n".join(_show_lines(entry, settings)))


@numbers_app.command("remove")
def remove(
    key: KeyArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
    = False,
) -> None:
    """Stop serving a number: its row and lease are deleted (its customers' data stays)."""
    from bot.fleet.admin import check_removable, remove_number
    from bot.fleet.numbers import NumberError

    settings = settings_or_exit()
    try:
        check_removable(key, settings)
    except NumberError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    entry = _run(settings, lambda store: _roster(store, key)).entries[0]
    if not yes:
        serving = f" (served by {entry.owner})" if entry.held else ""
        typer.confirm(f"Stop serving number {key}{serving}? Its node stops it at its next "
                      "lease renewal", abort=True)

    async def work(store: NumberStore) -> Any:
        return await remove_number(store, key, settings)

    _run(settings, work)
    typer.echo(f"removed number {key}: " + (
        f"node {entry.owner} stops it at its next lease renewal (within seconds)"
        if entry.held else "no node was serving it")
        + f". Its customers' data stays in the database; erase a customer with "
        f"`WABOT_TENANT={key} wabot forget +E164`.")
