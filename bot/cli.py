"""`wabot` — the command line. The only place that reads the environment and builds Settings."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from loguru import logger

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
    verbose: bool = False


state = _State()


@app.callback()
def main_options(
    config: ConfigOpt = None,
    log_json: Annotated[bool, typer.Option("--log-json", help="Log JSON lines.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    state.config, state.log_json, state.verbose = config, log_json, verbose


def settings_or_exit(**overrides: object) -> Settings:
    """Settings and logging, or a message that says what to fix (exit 78)."""
    try:
        settings = load_settings(state.config, **overrides)
    except SettingsError as exc:
        typer.echo(f"wabot: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    from bot.logs import setup_logging

    level = "DEBUG" if state.verbose else settings.log_level
    setup_logging(level=level, json=state.log_json or settings.log_json, environ=os.environ)
    return settings


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


PairOpt = Annotated[str | None, typer.Option(
    "--pair-phone", help="Log in with an 8-character pair code for this business number "
    "(E.164) instead of scanning a QR code.", show_default=False)]


def _whatsapp_settings(pair_phone: str | None) -> Settings:
    settings = settings_or_exit()
    if pair_phone:
        from bot.phones import PhoneError, parse_typed

        try:
            settings.whatsapp.pair_phone = parse_typed(pair_phone)
        except PhoneError as exc:
            raise fail(str(exc), 2) from None
    return settings


@app.command()
def run(pair_phone: PairOpt = None) -> None:
    """Run the daemon: connect to WhatsApp and answer every customer.

    The first start shows a QR code, in the terminal (also readable with `journalctl -fu
    wabot`) and as STATE_DIR/login-qr.png: scan it in WhatsApp → Linked devices → Link a
    device. With --pair-phone an 8-character code is printed instead: WhatsApp → Linked
    devices → Link with phone number.

    The session is kept in the state directory (WABOT_STATE_DIR, default ./data; mode
    0600), so later starts reconnect without a QR. Exit code 78 means an operator must act
    (logged out, number opened elsewhere, bad configuration).
    """
    settings = _whatsapp_settings(pair_phone)
    from bot.daemon import run_daemon
    from bot.sdnotify import Notifier

    code = asyncio.run(run_daemon(settings, Notifier.from_env(os.environ)))
    raise typer.Exit(code)


@app.command()
def login(pair_phone: PairOpt = None) -> None:
    """Link the business's WhatsApp number, then exit (the daemon is not started).

    Shows a QR code (terminal and STATE_DIR/login-qr.png) to scan in WhatsApp → Linked
    devices → Link a device; with --pair-phone +E164, an 8-character pair code to enter
    under Linked devices → Link with phone number.

    The session is written to the state directory (WABOT_STATE_DIR, default ./data) with
    mode 0600, and `wabot run` reuses it. Do not run it while the daemon runs on the same
    state directory.
    """
    settings = _whatsapp_settings(pair_phone)
    from bot.daemon import login as do_login
    from bot.sdnotify import Notifier

    raise typer.Exit(asyncio.run(do_login(settings, Notifier.from_env(os.environ))))


@app.command()
def chat(
    as_phone: Annotated[str, typer.Option("--as", help="The customer number to play, E.164.")],
    name: Annotated[str, typer.Option(help="The customer's name as WhatsApp would show it.")] = "",
    fast: Annotated[bool, typer.Option(help="Skip the human-like delays.")] = False,
) -> None:
    """Talk to your own agent in the terminal, as a customer, through the whole pipeline."""
    from bot.phones import PhoneError, parse_typed

    try:
        phone = parse_typed(as_phone)
    except PhoneError as exc:
        raise fail(str(exc), 2) from None
    settings = settings_or_exit()
    if fast:
        settings.presenter.enabled = False
        settings.inbox.debounce_seconds = 0
    from bot.console import run_chat

    run_configured(run_chat(settings, phone, name))


@app.command()
def simulate(
    scenario: Annotated[Path, typer.Argument(help="Scenario, JSON lines (see README).")],
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
    from bot.simulate import ScenarioError, run_file

    if not scenario.is_file():
        raise fail(f"scenario {scenario} does not exist", 2)
    settings = settings_or_exit()
    try:
        started = datetime.fromisoformat(start) if start else datetime.now(UTC)
    except ValueError:
        raise fail(f"--start {start!r} is not an ISO 8601 time", 2) from None
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    try:
        run_configured(run_file(settings, scenario, out, started, keep=keep))
    except ScenarioError as exc:
        raise fail(f"{scenario}: {exc}", 2) from None


@app.command()
def version() -> None:
    """Print the version."""
    from importlib.metadata import version as v

    typer.echo(v("wabot"))


# Commands of each area live in their own module and register on `app` when imported.
from bot import cli_admin, cli_followups, cli_memory  # noqa: E402, F401


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        logger.info("interrupted")
        sys.exit(130)
