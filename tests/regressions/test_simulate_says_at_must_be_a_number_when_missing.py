"""Issue #24 (Low): a scenario line without `at` was refused with "'at' must be a number of
seconds from 0 to …", which reads as if a value were there; it now says it is missing."""

from __future__ import annotations

from typer.testing import CliRunner

from bot.cli import app
from tests.cli.test_commands import env  # noqa: F401  (fixture)


def test_a_line_without_at_says_missing(env, tmp_path):  # noqa: F811
    scenario = tmp_path / "s.jsonl"
    scenario.write_text('{"op":"message","from":"+5215512345678","text":"hola"}\n')
    result = CliRunner().invoke(app, ["simulate", str(scenario)])
    assert result.exit_code == 2
    assert "line 1: 'at' is missing" in result.output
    assert "must be a number" not in result.output
