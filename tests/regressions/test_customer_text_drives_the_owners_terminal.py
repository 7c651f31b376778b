"""`wabot history`, `customers` and `runs` printed what customers wrote as it was: an escape
sequence in a message or a push name cleared the owner's screen, retitled the terminal or
hid lines. Control characters and escape sequences are now stripped from that output."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner

from bot.cli import app
from bot.text import for_terminal
from tests.cli.test_admin import env  # noqa: F401  (fixture)
from tests.fakes.pipeline import make_settings, pipeline

ANA = "+5215512345678"
HOSTILE = ("hi\x1b[2J\x1b[H\x1b]0;pwned\x07 there\x9b31m\r\x08\x00 friend\u202e"
           "\nsecond line\x1b[31m")
NAME = "Ana\x1b]8;;http://evil\x1b\\\nlink"


async def seed(db_url, tmp_path, server, tenant) -> None:
    settings = make_settings(db_url, tmp_path / "seed", server, tenant,
                             presenter={"enabled": False}, inbox={"debounce_seconds": 0})
    async with pipeline(settings) as p:
        await p.say(ANA, HOSTILE, push_name=NAME)
        await p.settle()


def clean(output: str) -> None:
    for bad in ("\x1b", "\x07", "\x9b", "\r", "\x08", "\x00", "\u202e"):
        assert bad not in output


def test_history_customers_and_runs_print_no_control_characters(
        env, db_url, tenant, tmp_path, openai_server):  # noqa: F811
    asyncio.run(seed(db_url, tmp_path, openai_server, tenant))
    runner = CliRunner()
    history = runner.invoke(app, ["history", ANA])
    assert history.exit_code == 0, history.output
    clean(history.output)
    assert "hi there\ufffd friend" in history.output  # NUL: as the memory store keeps it and "second line" in history.output
    assert f"{ANA} · Ana link ·" in history.output
    customers = runner.invoke(app, ["customers"])
    assert customers.exit_code == 0, customers.output
    clean(customers.output)
    assert "Ana link" in customers.output
    runs = runner.invoke(app, ["runs", ANA, "--prompt"])
    assert runs.exit_code == 0, runs.output
    clean(runs.output)
    assert "reply: OK: hi there\ufffd friend" in runs.output  # PostgreSQL: NUL refused the run


def test_line_breaks_and_tabs_stay_for_the_layout():
    assert for_terminal("a\tb\nc\x1b[1mD\x1b[0m") == "a\tb\ncD"
