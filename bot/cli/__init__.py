"""`wabot` — the command line. The only place that reads the environment and builds Settings.

The Typer app and what every command shares live in `common`; each command area is a module
of its own that registers its commands on that app when imported here.
"""

from __future__ import annotations

import sys

import typer
from loguru import logger

from bot.cli.common import app, verbose_first

# Each import registers its area's commands; `wabot --help` lists them in this order.
# isort: off
from bot.cli import init, daemon, chat, simulate  # noqa: F401
from bot.cli import admin, memory, followups, catalog  # noqa: F401
from bot.cli import knowledge, numbers  # noqa: F401
from bot.cli import web  # noqa: F401
# isort: on

__all__ = ["app", "main"]


@app.command()
def version() -> None:
    """Print the version."""
    from importlib.metadata import version as v

    typer.echo(v("wabot"))


def main() -> None:
    try:
        app(args=verbose_first(sys.argv[1:]), prog_name="wabot")
    except KeyboardInterrupt:
        logger.info("interrupted")
        sys.exit(130)
