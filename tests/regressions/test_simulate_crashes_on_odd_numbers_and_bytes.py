"""`wabot simulate` crashed with a traceback on `"at": NaN`, `Infinity` or `1e20` (Python's
JSON reads the first two; the last overflowed the virtual clock) and on a scenario that is
not UTF-8. Each is now exit 2 naming the line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.cli.test_admin import env  # noqa: F401  (fixture)

FIRST = b'{"op":"advance","at":0}\n'


@pytest.mark.parametrize("at", ["NaN", "Infinity", "-Infinity", "1e20", "1e309"])
def test_an_at_that_is_not_a_usable_number_names_the_line(env, tmp_path, at):  # noqa: F811
    scenario = tmp_path / "s.jsonl"
    scenario.write_bytes(FIRST + b'{"op":"message","at":' + at.encode()
                         + b',"from":"+15550001111","text":"x"}\n')
    result = CliRunner().invoke(app, ["simulate", str(scenario)])
    assert result.exit_code == 2, result.output
    assert "line 2: 'at' must be a number of seconds from 0 to" in result.output


def test_a_line_that_is_not_utf8_is_named(env, tmp_path):  # noqa: F811
    scenario = tmp_path / "s.jsonl"
    scenario.write_bytes(FIRST + b'{"op":"advance","at":1}\n'
                         + b'{"op":"message","at":2,"from":"+15550001111","text":"caf\xe9"}\n')
    result = CliRunner().invoke(app, ["simulate", str(scenario)])
    assert result.exit_code == 2, result.output
    assert "line 3: not UTF-8 (byte 57 of the line)" in result.output
