"""Issue #24 (Low): `wabot status` (and `customers`, `history`, …) typed in the wrong
directory silently created an empty `./data` there and reported on it, and `wabot run` never
said where its data lived. Commands that read what the daemon wrote now stop, saying where
they looked and why there, and create nothing; `run` says in its first line where its data
lives, as an absolute path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.ops import setup

READING = [["status"], ["status", "--json"], ["customers"], ["history", "+5215512345678"],
           ["export", "+5215512345678"], ["forget", "--yes", "+5215512345678"],
           ["runs", "+5215512345678"], ["followups"], ["followups", "cancel", "+5215512345678"],
           ["knowledge", "search", "conchas"], ["numbers", "list"]]


@pytest.mark.parametrize("command", READING, ids=" ".join)
def test_a_reading_command_in_the_wrong_directory_creates_nothing(
        command, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, command)
    assert result.exit_code != 0, result.output
    assert f"no wabot data here: the state directory {tmp_path / 'data'} does not exist" in (
        result.output)
    assert "config/wabot.toml" in result.output  # why it looked there
    assert list(tmp_path.iterdir()) == []


def test_in_the_project_folder_they_read_as_before(tmp_path, monkeypatch) -> None:
    setup.write_files(tmp_path, setup.Answers(name="Panadería Rosa"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["customers"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "no customers"


def test_run_says_first_where_its_data_lives(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WABOT_", "OPENAI_"))}
    # No API key for OpenAI: refused at once (78), after the first line.
    result = subprocess.run([sys.executable, "-m", "bot", "run"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 78, result.stderr
    first = result.stderr.splitlines()[0]
    assert f"data in {Path(tmp_path) / 'data'} (new: nothing had run with these settings)" in (
        first)
    assert f"database {tmp_path / 'data' / 'wabot.db'}" in first
