"""`wabot run` and `wabot login`: the daemon and the WhatsApp login."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from bot.cli.common import app, fail, settings_or_exit
from bot.settings import Settings

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
    0600), or in the database when database_url is PostgreSQL (whatsapp.session_store), so
    later starts reconnect without a QR. Exit code 78 means an operator must act
    (logged out, number opened elsewhere, bad configuration).
    """
    settings = _whatsapp_settings(pair_phone)
    from bot.ops.collector import take_over
    from bot.ops.daemon import run_daemon
    from bot.ops.sdnotify import Notifier

    take_over()  # the garbage collector on the daemon's pace (bot/ops/collector.py)
    code = asyncio.run(run_daemon(settings, Notifier.from_env(os.environ)))
    # Everything is stopped and closed: spare the exit a last collection over every loaded
    # module's objects (the console's web stack made it take seconds on a busy machine).
    import gc

    gc.freeze()
    raise typer.Exit(code)


@app.command()
def login(pair_phone: PairOpt = None) -> None:
    """Link the business's WhatsApp number, then exit (the daemon is not started).

    Shows a QR code (terminal and STATE_DIR/login-qr.png) to scan in WhatsApp → Linked
    devices → Link a device; with --pair-phone +E164, an 8-character pair code to enter
    under Linked devices → Link with phone number.

    The session is written to the state directory (WABOT_STATE_DIR, default ./data) with
    mode 0600, or to the database when database_url is PostgreSQL
    (whatsapp.session_store), and `wabot run` reuses it. Do not run it while the daemon runs on the same
    state directory.
    """
    settings = _whatsapp_settings(pair_phone)
    if settings.whatsapp.transport == "cloud":
        typer.echo("The Cloud API needs no login: the number is linked in the Meta app and "
                   "wabot uses cloud.access_token. Check it with `wabot doctor`.")
        raise typer.Exit(0)
    from bot.ops.daemon import login as do_login
    from bot.ops.sdnotify import Notifier

    raise typer.Exit(asyncio.run(do_login(settings, Notifier.from_env(os.environ))))
