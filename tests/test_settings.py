"""Settings: file, environment, OpenAI variables, and errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.business import BusinessError, load_business
from bot.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    import os

    for name in list(os.environ):
        if name.startswith(("WABOT_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_need_no_file(tmp_path):
    s = load_settings()
    assert s.tenant == "default"
    assert s.sql_url == f"sqlite:///{tmp_path / 'data' / 'wabot.db'}"
    assert s.llm.timeout == 30.0


def test_the_example_config_loads():
    s = load_settings(ROOT / "config" / "wabot.example.toml")
    assert s.inbox.debounce_seconds == 2
    assert s.llm.model == "gpt-4o-mini"


def test_environment_beats_file_and_openai_variables_fill_in(tmp_path, monkeypatch):
    cfg = tmp_path / "w.toml"
    cfg.write_text('tenant = "shop1"\n[llm]\nmodel = "from-file"\n')
    monkeypatch.setenv("WABOT_LLM__MODEL", "from-env")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    s = load_settings(cfg)
    assert (s.tenant, s.llm.model, s.llm.base_url) == ("shop1", "from-env", "http://127.0.0.1:9/v1")
    assert s.llm.api_key is not None and s.llm.api_key.get_secret_value() == "sk-test-123"
    assert "sk-test-123" not in repr(s)


def test_wabot_config_variable_picks_the_file(tmp_path, monkeypatch):
    cfg = tmp_path / "x.toml"
    cfg.write_text('tenant = "via-env"\n')
    monkeypatch.setenv("WABOT_CONFIG", str(cfg))
    assert load_settings().tenant == "via-env"


def test_invalid_values_name_the_field_and_the_variable(monkeypatch):
    monkeypatch.setenv("WABOT_LLM__TIMEOUT", "-3")
    monkeypatch.setenv("WABOT_INBOX__DEBOUNCE_SECONDS", "soon")
    with pytest.raises(SettingsError) as err:
        load_settings()
    text = str(err.value)
    assert "llm.timeout" in text and "WABOT_LLM__TIMEOUT" in text
    assert "inbox.debounce_seconds" in text


def test_unknown_keys_and_bad_files_are_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("tenant = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text("tennant = 'x'\n")
    with pytest.raises(SettingsError, match="tennant"):
        load_settings(typo)
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_database_url_must_be_sql(monkeypatch):
    monkeypatch.setenv("WABOT_DATABASE_URL", "mysql://x/y")
    with pytest.raises(SettingsError, match="database_url"):
        load_settings()


def test_business_example_loads_and_errors_are_clear(tmp_path):
    b = load_business(ROOT / "config" / "business.example.yaml")
    assert b.products and b.open_span(6) is None
    bad = tmp_path / "b.yaml"
    bad.write_text("name: X\ntimezone: Mars/Base\nhours: {mon: '18:00-09:00'}\n")
    with pytest.raises(BusinessError) as err:
        load_business(bad)
    assert "timezone" in str(err.value) and "hours" in str(err.value)
    with pytest.raises(BusinessError, match="does not exist"):
        load_business(tmp_path / "nope.yaml")


def test_the_example_file_spells_out_the_built_in_follow_up_rules():
    example = load_settings(ROOT / "config" / "wabot.example.toml")
    assert example.followups.rules == load_settings().followups.rules
    assert [r.name for r in load_settings().followups.rules] == [
        "lead_silent", "after_purchase", "customer_inactive"]


def test_business_errors_count_positions_from_one(tmp_path):
    profile = tmp_path / "b.yaml"
    profile.write_text("name: Shop\nproducts:\n  - name: A\n    price: 10\n"
                       "  - name: B\n    price: ten\n")
    with pytest.raises(BusinessError, match=r"products\[2\]\.price: "):
        load_business(profile)


def test_a_persona_ending_in_a_full_stop_reads_as_a_sentence():
    from datetime import UTC, datetime

    from bot.agents.prompt import business_block
    from bot.business import Business

    b = Business(name="Casa Azul", persona="Sofía. Uses the first name once known.")
    first = business_block(b, datetime(2026, 1, 5, tzinfo=UTC)).splitlines()[0]
    assert first == ("You write for Casa Azul on WhatsApp. You are Sofía. Uses the first "
                     "name once known.")
