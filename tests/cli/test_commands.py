"""The command line: simulate, chat, and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path, openai_server, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("WABOT_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    values = {"WABOT_STATE_DIR": str(tmp_path / "state"),
              "WABOT_LLM__BASE_URL": openai_server.base_url,
              "WABOT_LLM__API_KEY": "test", "WABOT_LLM__MAX_RETRIES": "0",
              "WABOT_BUSINESS_FILE": str(ROOT / "config" / "business.example.yaml")}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def write(path: Path, *ops: dict) -> Path:
    path.write_text("\n".join(json.dumps(o) for o in ops) + "\n")
    return path


def test_simulate_replays_a_scenario_with_eviction_and_restart(env, tmp_path, openai_server):
    scenario = write(
        tmp_path / "s.jsonl",
        {"op": "message", "at": 0, "from": "+5215512345678", "name": "Ana", "text": "hi"},
        {"op": "message", "at": 1, "from": "+5215512345678", "text": "the blue one"},
        {"op": "advance", "at": 3600},
        {"op": "restart", "at": 3700},
        {"op": "message", "at": 3800, "from": "+5215512345678", "text": "still there?"},
    )
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    replies = [x for x in lines if x.get("kind") == "reply"]
    assert [r["text"] for r in replies] == ["OK: the blue one", "OK: still there?"]
    assert all(r["to"] == "+5215512345678" for r in replies)
    events = [(x["event"], x["at"]) for x in lines if "event" in x]
    assert [e for e, _ in events] == ["agent_created", "agent_evicted", "agent_loaded"]
    assert 1800 <= events[1][1] <= 1900  # evicted after 30 idle minutes of virtual time
    assert replies[0]["at"] > 1 and replies[1]["at"] > 3800  # debounce + typing, virtually
    assert [x["at"] for x in lines] == sorted(x["at"] for x in lines)


@pytest.mark.parametrize(("line", "complaint"), [
    ('{"op":"dance","at":1}', "line 2: unknown op 'dance'"),
    ("not json", "line 2: not JSON"),
    ('{"op":"message","at":-1,"from":"+15550001111","text":"x"}', "line 2: 'at' must be"),
    ('{"op":"message","at":5,"from":"nobody","text":"x"}', "line 2: 'nobody' has characters a phone number does not"),
])
def test_simulate_names_the_bad_line(env, tmp_path, line, complaint):
    scenario = tmp_path / "bad.jsonl"
    scenario.write_text('{"op":"advance","at":0}\n' + line + "\n")
    result = CliRunner().invoke(app, ["simulate", str(scenario)])
    assert result.exit_code == 2
    assert complaint in result.output


def test_misconfiguration_fails_at_startup_with_the_fix(env, tmp_path, monkeypatch):
    monkeypatch.setenv("WABOT_PRESENTER__MAX_BUBBLES", "0")
    scenario = write(tmp_path / "s.jsonl", {"op": "advance", "at": 0})
    result = CliRunner().invoke(app, ["simulate", str(scenario)])
    assert result.exit_code == 78
    assert "presenter.max_bubbles" in result.output and "WABOT_PRESENTER__MAX_BUBBLES" in result.output


def test_chat_talks_to_the_agent_through_the_whole_pipeline(env):
    result = subprocess.run(
        [sys.executable, "-m", "bot", "chat", "--as", "+52 1 55 1234 5678", "--fast"],
        input="hello there\n/quit\n", capture_output=True, text=True, timeout=60,
        env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    assert "OK: hello there" in result.stdout


def test_help_lists_the_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("chat", "simulate"):
        assert command in result.output


@pytest.mark.parametrize("command", [["run"], ["chat", "--as", "+5215512345678"]])
def test_a_missing_business_profile_is_a_clear_startup_error(env, tmp_path, command):
    result = subprocess.run(
        [sys.executable, "-m", "bot", *command], input="", capture_output=True, text=True,
        timeout=60, env={**os.environ, **env, "WABOT_BUSINESS_FILE": str(tmp_path / "nope.yaml")})
    assert result.returncode == 78, result.stderr
    assert "business profile" in result.stderr and "nope.yaml does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_verbose_is_accepted_after_the_command_too():
    from bot.cli.common import verbose_first

    assert verbose_first(["status", "-v"]) == ["-v", "status"]
    assert verbose_first(["-c", "x.toml", "history", "+1", "-vv"]) == [
        "-vv", "-c", "x.toml", "history", "+1"]
    assert verbose_first(["simulate", "s.jsonl", "--", "-v"]) == ["simulate", "s.jsonl", "--", "-v"]
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "bot", "version", "-vv"], capture_output=True,
                         text=True, timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
