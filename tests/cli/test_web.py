"""`wabot console` (URL and a one-time login link) and `wabot runs` (the run log)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger
from typer.testing import CliRunner

from bot.cli import app
from bot.web.auth import Auth
from tests.fakes.pipeline import make_settings, pipeline

ROOT = Path(__file__).resolve().parents[2]
ANA = "+5215512345678"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    logger.remove()
    logger.configure(patcher=lambda record: None)
    logger.add(sys.stderr)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def env(tmp_path, monkeypatch, db_url, tenant, openai_server):
    for name in list(os.environ):
        if name.startswith(("WABOT_", "OPENAI_")) and not name.startswith("WABOT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    for k, v in {"WABOT_STATE_DIR": str(tmp_path / "state"), "WABOT_DATABASE_URL": db_url,
                 "WABOT_TENANT": tenant, "WABOT_LLM__BASE_URL": openai_server.base_url,
                 "WABOT_LLM__API_KEY": "test",
                 "WABOT_BUSINESS_FILE": str(ROOT / "config" / "business.example.yaml")}.items():
        monkeypatch.setenv(k, v)


def test_console_prints_the_url_and_a_login_link_that_works_once(env, tmp_path):
    result = CliRunner().invoke(app, ["console"])
    assert result.exit_code == 0, result.output
    assert "console   http://127.0.0.1:8080" in result.output
    code = re.search(r"/login\?code=(\S+)", result.output).group(1)
    token_file = tmp_path / "state" / "console-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600  # generated, owner only
    auth = Auth(token_file.read_text().strip(), 3600, 10)  # what the daemon checks with
    assert auth.use_link(code) and not auth.use_link(code)
    again = CliRunner().invoke(app, ["console"])  # the same token, a new link
    assert token_file.read_text().strip() == auth.token
    assert re.search(r"/login\?code=(\S+)", again.output).group(1) != code


def test_runs_prints_the_model_calls_behind_each_reply(env, tmp_path, db_url, tenant,
                                                       openai_server):
    settings = make_settings(db_url, tmp_path / "state", openai_server, tenant,
                             presenter={"enabled": False}, inbox={"debounce_seconds": 0})
    openai_server.tool_call("ask_for_human", {"reason": "refund"})
    openai_server.reply("A person will write to you.")

    async def seed() -> None:
        async with pipeline(settings) as p:
            await p.say(ANA, "I want my money back")
            await p.settle()

    asyncio.run(seed())
    result = CliRunner().invoke(app, ["runs", ANA, "--prompt"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "→ tool ask_for_human" in out and "refund" in out
    assert "[user] I want my money back" in out
    assert "[tool] The owner has been told" in out  # the tool's result, as the model saw it
    assert "reply: A person will write to you." in out
    assert len(re.findall(r"^  call · ", out, re.M)) == 2
    nobody = CliRunner().invoke(app, ["runs", "+14155550123"])
    assert "no runs recorded" in nobody.output
