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
    business = tmp_path / "business.yaml"  # the owner's own (the example is flagged)
    business.write_text((ROOT / "config" / "business.example.yaml").read_text(
        encoding="utf-8").replace("name: Casa Azul Shoes", "name: Casa Rosa Shoes"),
        encoding="utf-8")
    config = tmp_path / "wabot.toml"
    config.write_text(f'tenant = "casa-azul"\nstate_dir = "{state}"\n'
                      f'database_url = "{db_url}"\n'
                      f'business_file = "{business}"\n'
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
    # On PostgreSQL the session lives in the database: not a fault, whether linked or not.
    assert "✓ WhatsApp session: kept in the database postgresql://wabot:***@" in out
    assert "wabot login" in out
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


def cloud_setup(tmp_path: Path, server_url: str, graph_url: str, token: str,
                public_url: str) -> Path:
    config = good_setup(tmp_path, server_url, f"sqlite:///{tmp_path / 'wabot.db'}")
    (tmp_path / "state" / "whatsapp-session.sqlite3").unlink()  # the Cloud API has no login
    text = config.read_text().replace("[llm]", '[whatsapp]\ntransport = "cloud"\n[llm]')
    config.write_text(text + f'[cloud]\nphone_number_id = "106540352242922"\n'
                      f'access_token = "{token}"\napp_secret = "s"\nverify_token = "v"\n'
                      f'graph_url = "{graph_url}"\npublic_url = "{public_url}"\n')
    return config


def test_the_cloud_transport_shows_the_webhook_url_and_checks_the_token(
        clean_env, tmp_path, openai_server, graph_server):
    config = cloud_setup(tmp_path, openai_server.base_url, graph_server.graph_url,
                         graph_server.token, "https://bot.casa-azul.mx/")
    result = doctor("--config", str(config))
    assert result.exit_code == 0, result.output
    assert ("✓ Cloud API webhook: register https://bot.casa-azul.mx/webhooks/whatsapp"
            in result.output)
    assert "✓ Cloud API token: accepted for +1 555 010 0199 (Casa Azul)" in result.output
    assert "WhatsApp session" not in result.output  # no QR, no session file
    [call] = [c for c in graph_server.calls if c.path == "/v21.0/106540352242922"]
    assert call.headers["authorization"] == f"Bearer {graph_server.token}"


def test_the_cloud_transport_with_a_refused_token_and_no_public_url(
        clean_env, tmp_path, openai_server, graph_server):
    config = cloud_setup(tmp_path, openai_server.base_url, graph_server.graph_url,
                         "EAAG-expired", "")
    result = doctor("--config", str(config))
    assert result.exit_code != 0
    assert "✗ Cloud API webhook: no public address" in result.output
    assert "WABOT_CLOUD__PUBLIC_URL" in result.output
    assert "✗ Cloud API token:" in result.output and "refused the access token" in result.output
    assert "EAAG-expired" not in result.output
