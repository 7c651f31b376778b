"""Owner alerts are kept now (`owner_alerts`): a simulation whose turn failed would have
left its run's alerts in the database after erasing its tenant."""

from __future__ import annotations

import json
import sqlite3

from typer.testing import CliRunner

from bot.cli import app
from tests.cli.test_commands import env  # noqa: F401  (fixture)


def test_a_simulation_erases_its_alerts(env, tmp_path, openai_server):  # noqa: F811
    openai_server.error(500)  # the turn fails: the owner is alerted
    scenario = tmp_path / "s.jsonl"
    scenario.write_text(json.dumps({"op": "message", "at": 0, "from": "+5215512345678",
                                    "text": "hola"}) + "\n")
    result = CliRunner().invoke(app, ["simulate", str(scenario)])
    assert result.exit_code == 0, result.output
    db = sqlite3.connect(tmp_path / "state" / "wabot.db")
    try:
        assert db.execute("SELECT count(*) FROM owner_alerts").fetchone() == (0,)
    finally:
        db.close()
