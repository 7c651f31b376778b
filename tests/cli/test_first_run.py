"""The first hour, as a new shop lives it: `wabot init --yes` in an empty directory, the
doctor all green against the model endpoint, and a lead who goes quiet is followed up the
next day with nothing else configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANA = "+5215512345678"


def wabot(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    d = tmp_path / "shop"
    d.mkdir()
    return d


def test_init_then_doctor_then_a_silent_lead_gets_a_follow_up(shop, openai_server):
    init = wabot(shop, "init", "--yes", "--name", "Casa Azul", "--language", "Spanish",
                 "--timezone", "America/Mexico_City", "--base-url", openai_server.base_url,
                 "--api-key", "sk-test")
    assert init.returncode == 0, init.stdout + init.stderr
    assert "all good" in init.stdout
    assert sorted(p.name for p in (shop / "config").iterdir()) == ["business.yaml", "wabot.toml"]
    assert (shop / ".env").stat().st_mode & 0o777 == 0o600
    assert "sk-test" not in (shop / "config" / "wabot.toml").read_text()  # the key stays in .env

    doctor = wabot(shop, "doctor", "--timeout", "5")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert doctor.stdout.splitlines()[-1] == "all good"

    openai_server.reply("Hola Ana, ¿te ayudo a elegir?", match="went quiet")
    scenario = shop / "quiet.jsonl"
    scenario.write_text("\n".join(json.dumps(o) for o in [
        {"op": "message", "at": 0, "from": ANA, "name": "Ana", "text": "hola, precios?"},
        {"op": "advance", "at": 25 * 3600}]) + "\n")
    # Monday 10:00 in Mexico City: the follow-up falls inside Tuesday's opening hours.
    sim = wabot(shop, "simulate", str(scenario), "--start", "2026-01-05T16:00:00+00:00")
    assert sim.returncode == 0, sim.stdout + sim.stderr
    sent = [x for x in map(json.loads, sim.stdout.splitlines()) if "text" in x]
    assert [(x["kind"], x["text"]) for x in sent] == [
        ("reply", "OK: hola, precios?"), ("followup", "Hola Ana, ¿te ayudo a elegir?")]
    assert 24 * 3600 <= sent[1]["at"] <= 25 * 3600


def test_init_refuses_to_overwrite_and_rejects_bad_hours(shop):
    bad = wabot(shop, "init", "--yes", "--hours", "monday 9-5", "--no-check")
    assert bad.returncode == 2 and "mon-fri 09:00-18:00" in bad.stderr
    first = wabot(shop, "init", "--yes", "--no-check")
    assert first.returncode == 0, first.stderr
    again = wabot(shop, "init", "--yes", "--no-check")
    assert again.returncode == 2 and "already exist" in again.stderr
