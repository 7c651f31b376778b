"""`wabot` — the command line. The only place that reads the environment and builds Settings.

The Typer app and what every command shares live in `common`; each command area is a module
of its own that registers its commands on that app when imported here.
"""

from __future__ import annotations

import sys

from loguru import logger

from bot.cli import admin, chat, daemon, followups, init, memory, simulate  # noqa: F401
from bot.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        logger.info("interrupted")
        sys.exit(130)
