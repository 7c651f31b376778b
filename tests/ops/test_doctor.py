"""`wabot doctor` on a good and on a broken configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("WABOT_", "OPENAI_")) and not name.startswith("WABOT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def good_setup(tmp_path: Path, server_url: str, db_url: str) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    state.chmod(0o700)
    session = state / "whatsapp-session.sqlite3"
    session.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    session.chmod(0o600)
    config = tmp_path / "wabot.toml"
    config.write_text(f'tenant = "casa-azul"\nstate_dir = "{state}"\n'
                      f'database_url = "{db_url}"\n'
                      f'business_file = "{ROOT / "config" / "business.example.yaml"}"\n'
                      f'[llm]\nbase_url = "{server_url}"\napi_key = "test"\n'
                      '[http]\nport = 0\n')
    return config


def doctor(*args: str):
    result = CliRunner().invoke(app, [*args, "doctor", "--timeout", "3"])
    print(result.output)  # the README shows it: `pytest -s tests/ops/test_doctor.py`
    return result


def test_a_good_configuration_is_all_ticks(clean_env, tmp_path, db_url, openai_server):
    if db_url.startswith("sqlite"):  # an existing SQLite file is opened, not just planned
        Path(db_url.removeprefix("sqlite:///")).write_bytes(b"")
    config = good_setup(tmp_path, openai_server.base_url, db_url)
    result = doctor("--config", str(config))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert [line[0] for line in lines[1:-1]] == ["✓"] * 8
    assert lines[-1] == "all good"
    assert any(line.startswith("✓ LLM endpoint: ") and "answered with gpt-4o-mini" in line
               for line in lines)
    [probe] = openai_server.chat_requests()
    assert probe["max_tokens"] <= 16  # one tiny request


def test_a_broken_configuration_says_what_to_fix(clean_env, tmp_path, openai_server):
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o755)
    bad_business = tmp_path / "business.yaml"
    bad_business.write_text("name: [unclosed\n")
    config = tmp_path / "wabot.toml"
    config.write_text(f'state_dir = "{state}"\n'
                      'database_url = "postgresql://wabot:secret@127.0.0.1:1/wabot"\n'
                      'mongodb_url = "mongodb://127.0.0.1:1"\n'
                      f'business_file = "{bad_business}"\n'
                      '[llm]\nbase_url = "http://127.0.0.1:1/v1"\napi_key = "test"\n')
    result = doctor("--config", str(config))
    assert result.exit_code == 1
    out = result.output
    assert "✓ configuration" in out
    for name in ("business profile", "state directory", "SQL database", "MongoDB",
                 "LLM endpoint"):
        assert f"✗ {name}: " in out
    assert out.count("    fix: ") == 5
    assert "chmod 700" in out
    # Not linked yet is where every install starts, not a fault: the first run shows the QR.
    assert "✓ WhatsApp session: not linked yet" in out and "wabot login" in out
    assert "secret" not in out  # passwords in URLs are hidden
    assert out.splitlines()[-1] == "5 problems found"


def test_a_model_the_endpoint_does_not_serve(clean_env, tmp_path, openai_server):
    config = good_setup(tmp_path, openai_server.base_url, f"sqlite:///{tmp_path / 'w.db'}")
    openai_server.error(404, "The model `gpt-4o-mini` does not exist")
    result = doctor("--config", str(config))
    assert result.exit_code == 1
    assert "✗ LLM endpoint: " in result.output and "HTTP 404 for model gpt-4o-mini" in result.output
    assert "one of gpt-4o-mini, fake-model" in result.output


def test_a_configuration_that_does_not_load(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("WABOT_PRESENTER__MAX_BUBBLES", "0")
    result = doctor()
    assert result.exit_code == 1
    assert result.output.startswith("wabot doctor\n✗ configuration: ")
    assert "WABOT_PRESENTER__MAX_BUBBLES" in result.output
