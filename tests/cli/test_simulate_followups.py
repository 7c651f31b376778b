"""`wabot simulate` with follow-ups: the virtual clock runs due follow-ups as it passes
them, and `wabot followups` lists and cancels pending ones."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app

ANA = "+5215512345678"
RULES = """
[followups]
max_per_customer = 3

[[followups.rules]]
name = "lead_silent"
stage = "lead"
after_hours = 24
reason = "The lead asked about sneakers and went quiet: check in once, gently."
"""
BUSINESS = """
name: Casa Azul
language: Spanish
timezone: America/Mexico_City
hours: {mon: "09:00-19:00", tue: "09:00-19:00", wed: "09:00-19:00", thu: "09:00-19:00",
        fri: "09:00-19:00", sat: "09:00-19:00", sun: "09:00-19:00"}
"""


@pytest.fixture
def env(tmp_path, openai_server, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("WABOT_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "business.yaml").write_text(BUSINESS)
    (tmp_path / "wabot.toml").write_text(RULES)
    values = {"WABOT_STATE_DIR": str(tmp_path / "state"),
              "WABOT_CONFIG": str(tmp_path / "wabot.toml"),
              "WABOT_LLM__BASE_URL": openai_server.base_url,
              "WABOT_LLM__API_KEY": "test", "WABOT_LLM__MAX_RETRIES": "0",
              "WABOT_BUSINESS_FILE": str(tmp_path / "business.yaml")}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def write(path: Path, *ops: dict) -> Path:
    path.write_text("\n".join(json.dumps(o) for o in ops) + "\n")
    return path


def test_a_silent_lead_is_followed_up_after_24h_and_never_again_after_stop(
        env, tmp_path, openai_server):
    openai_server.reply("Hola Ana, ¿pudiste ver los tenis azules?", match="went quiet")
    scenario = write(
        tmp_path / "s.jsonl",
        {"op": "message", "at": 0, "from": ANA, "name": "Ana",
         "text": "hola, tienen tenis azules?"},
        {"op": "advance", "at": 25 * 3600},
        {"op": "message", "at": 25 * 3600, "from": ANA, "text": "tal vez luego"},
        {"op": "message", "at": 25 * 3600 + 120, "from": ANA, "text": "STOP"},
        {"op": "advance", "at": 10 * 86400},
    )
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(out),
                                      "--start", "2026-01-05T15:00:00+00:00"])
    assert result.exit_code == 0, result.output
    sent = [x for x in map(json.loads, out.read_text().splitlines()) if "text" in x]
    assert [(x["kind"], x["text"]) for x in sent] == [
        ("reply", "OK: hola, tienen tenis azules?"),
        ("followup", "Hola Ana, ¿pudiste ver los tenis azules?"),
        ("reply", "OK: tal vez luego"),
        ("optout", sent[-1]["text"]),
    ]
    followup = sent[1]
    assert followup["to"] == ANA and 24 * 3600 < followup["at"] < 24 * 3600 + 60
    assert "ALTA" in sent[-1]["text"]  # the confirmation in the business's language
    # The run's tenant is erased afterwards, its job table too.
    with sqlite3.connect(tmp_path / "state" / "wabot.db") as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
    assert not [t for t in tables if t.startswith("followup_jobs_")]


def test_followups_cli_lists_and_cancels(env, tmp_path, openai_server, monkeypatch):
    openai_server.tool_call("schedule_follow_up",
                            {"when": "in 3 days", "reason": "ask whether size 26 fit"})
    openai_server.reply("Noted!")
    scenario = write(tmp_path / "s.jsonl",
                     {"op": "message", "at": 0, "from": ANA, "text": "size 26 please"})
    # Keep the run's data (under its own tenant) for the CLI to read.
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--keep",
                                      "--start", "2026-01-05T15:00:00+00:00"])
    assert result.exit_code == 0, result.output
    kept = _sim_tenant(tmp_path)
    assert f"kept tenant {kept}; inspect it with: WABOT_TENANT={kept} wabot customers" \
        in result.stderr
    monkeypatch.setenv("WABOT_TENANT", kept)  # the run's own tenant
    listed = CliRunner().invoke(app, ["followups", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["to"], r["kind"], r["why"]) for r in rows] == [
        (ANA, "lead_silent", "The lead asked about sneakers and went quiet: check in "
                             "once, gently."),
        (ANA, "agent", "ask whether size 26 fit")]
    assert rows[0]["at"].startswith("2026-01-06T09:00")  # in the business's time
    mine = CliRunner().invoke(app, ["followups", "--customer", "+52 1 55 1234 5678"])
    assert mine.exit_code == 0 and "ask whether size 26 fit" in mine.stdout
    assert "2 pending follow-up(s)" in mine.stderr
    gone = CliRunner().invoke(app, ["followups", "cancel", rows[1]["id"]])
    assert gone.exit_code == 0, gone.output
    again = CliRunner().invoke(app, ["followups", "cancel", rows[1]["id"]])
    assert again.exit_code == 1 and "no pending follow-up" in again.output
    all_of_hers = CliRunner().invoke(app, ["followups", "cancel", ANA])
    assert all_of_hers.exit_code == 0 and "cancelled 1" in all_of_hers.stdout
    assert CliRunner().invoke(app, ["followups", "--json"]).stdout == ""


def _sim_tenant(tmp_path: Path) -> str:
    with sqlite3.connect(tmp_path / "state" / "wabot.db") as db:
        return str(db.execute("select tenant from customers").fetchone()[0])


def test_a_bad_line_stops_the_scenario_before_anything_runs(env, tmp_path, openai_server):
    scenario = write(tmp_path / "s.jsonl",
                     {"op": "message", "at": 0, "from": ANA, "text": "hola"},
                     {"op": "advance", "at": 3600},
                     {"op": "owner", "at": 3700, "to": "55 1234", "text": "hi"})
    result = CliRunner().invoke(app, ["simulate", str(scenario)])
    assert result.exit_code == 2
    assert "line 3: '55 1234' has no country code" in result.output
    assert openai_server.chat_requests() == []  # line 1 was never played


@pytest.mark.parametrize("start", ["2026-01-06T03:00:00+00:00", "2026-01-05T21:00:00-06:00"])
def test_followups_show_when_it_really_goes_out_in_the_business_time(
        env, tmp_path, openai_server, monkeypatch, start):
    # Monday 21:00 in Mexico City: the 24 h rule falls on Tuesday 21:00, after closing.
    scenario = write(tmp_path / "s.jsonl",
                     {"op": "message", "at": 0, "from": ANA, "text": "hola"})
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--keep",
                                      "--start", start])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("WABOT_TENANT", _sim_tenant(tmp_path))
    [row] = [json.loads(line) for line in
             CliRunner().invoke(app, ["followups", "--json"]).stdout.splitlines()]
    assert row["due"].startswith("2026-01-06T21:00")  # after the reply's few seconds
    assert row["at"] == "2026-01-07T09:00:00-06:00"  # the opening after it
    listed = CliRunner().invoke(app, ["followups"])
    assert listed.stdout.startswith("Wed 2026-01-07 09:00 CST  ")
    assert "(due 2026-01-06 21:00 CST; sending hours)" in listed.stdout
