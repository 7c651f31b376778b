"""What every command shares: the Typer app, global options, Settings and the exit codes."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from bot.settings import Settings, SettingsError, load_settings

T = TypeVar("T")
EXIT_CONFIG = 78  # misconfiguration or operator action needed: systemd must not hot-loop

app = typer.Typer(
    name="wabot",
    help="A WhatsApp daemon that gives every customer a permanent AI agent of their own.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", help="TOML settings file (default: $WABOT_CONFIG, else config/wabot.toml).",
    show_default=False)]


class _State:
    config: Path | None = None
    log_json: bool = False
    verbose: int = 0


state = _State()


@app.callback()
def main_options(
    config: ConfigOpt = None,
    log_json: Annotated[bool, typer.Option("--log-json", help="Log JSON lines.")] = False,
    verbose: Annotated[int, typer.Option(
        "--verbose", "-v", count=True,
        help="Debug logging (-vv: the libraries' internals too). Also after the command.")] = 0,
) -> None:
    state.config, state.log_json, state.verbose = config, log_json, verbose


VERBOSE = re.compile(r"^(-v+|--verbose)$")


def verbose_first(argv: list[str]) -> list[str]:
    """`wabot status -v` means `wabot -v status`: the flag is the app's, wherever typed
    (up to a `--`)."""
    end = argv.index("--") if "--" in argv else len(argv)
    flags = [a for a in argv[:end] if VERBOSE.match(a)]
    return flags + [a for a in argv[:end] if not VERBOSE.match(a)] + argv[end:]


def settings_or_exit(**overrides: object) -> Settings:
    """Settings and logging, or a message that says what to fix (exit 78)."""
    try:
        settings = load_settings(state.config, **overrides)
    except SettingsError as exc:
        typer.echo(f"wabot: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    from bot.ops.logs import setup_logging

    level = {0: settings.log_level, 1: "DEBUG"}.get(state.verbose, "TRACE")
    setup_logging(level=level, json=state.log_json or settings.log_json, environ=os.environ)
    return settings


def require_data(settings: Settings, code: int = 1) -> None:
    """Commands that read what the daemon wrote stop here when the SQLite database's folder
    (the state directory) is not there, as in a wrong directory: opening the database would
    create an empty ./data wherever the command was typed. `wabot init` makes it."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.sql_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    folder = Path(url.database).parent
    if not folder.is_dir():
        raise fail(no_data_here(settings, folder), code)


def no_data_here(settings: Settings, folder: Path) -> str:
    """Where the data was looked for and why there, for a command that found none."""
    from bot.settings import DEFAULT_CONFIG

    config = state.config or os.environ.get("WABOT_CONFIG") or (
        DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    source = f"settings from {config}" if config else (
        f"no settings file: none given and no {DEFAULT_CONFIG} in {Path.cwd()}")
    what = ("state directory" if folder.resolve() == settings.state_dir.resolve()
            else "database's folder")
    return (f"no wabot data here: the {what} {folder.absolute()} does not exist ({source}). "
            "Run this in the project folder (where `wabot init` wrote config/), or name its "
            "settings with --config FILE or WABOT_CONFIG (for the service: wabot-admin, "
            "docs/service.md)")


def fail(message: str, code: int = EXIT_CONFIG) -> typer.Exit:
    typer.echo(f"wabot: {message}", err=True)
    return typer.Exit(code)


def run_configured(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; a business profile or database URL that cannot be used
    ends it with the message and exit 78, not a traceback."""
    from bot.business import BusinessError
    from bot.stores.db import DatabaseError

    try:
        return asyncio.run(coro)
    except (BusinessError, DatabaseError) as exc:
        raise fail(str(exc)) from None
