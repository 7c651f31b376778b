"""Configuration traps a new install fell into: each one is now refused at start with the
setting and the fix, or works as the README says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_openai_variables_in_dotenv_fill_the_llm_section(tmp_path):
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-from-dotenv\n"
                                   "OPENAI_BASE_URL=http://127.0.0.1:9/v1\n"
                                   "WABOT_TENANT=shop1\n")
    s = load_settings()
    assert s.llm.api_key is not None and s.llm.api_key.get_secret_value() == "sk-from-dotenv"
    assert (s.llm.base_url, s.tenant) == ("http://127.0.0.1:9/v1", "shop1")


def test_the_environment_beats_dotenv_for_openai_variables(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("OPENAI_BASE_URL=http://127.0.0.1:9/v1\n")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8/v1")
    assert load_settings().llm.base_url == "http://127.0.0.1:8/v1"


def test_a_typo_in_dotenv_is_still_refused(tmp_path):
    (tmp_path / ".env").write_text("WABOT_TENNANT=shop1\n")
    with pytest.raises(SettingsError, match=r"did you mean tenant\?"):
        load_settings()


def test_a_misspelled_key_inside_a_section_names_the_closest(tmp_path):
    config = tmp_path / "w.toml"
    config.write_text("[inbox]\ndebounce_second = 2\n")
    with pytest.raises(SettingsError) as err:
        load_settings(config)
    assert "inbox.debounce_second: unknown setting (did you mean inbox.debounce_seconds?)" \
        in str(err.value)


def test_a_misspelled_nested_variable_is_refused(monkeypatch):
    monkeypatch.setenv("WABOT_FOLLOWUPS__OPTOUT__STOP_WORD", '["alto"]')
    with pytest.raises(SettingsError, match=r"did you mean followups\.optout\.stop_words\?"):
        load_settings()


@pytest.mark.parametrize("where", ["access.allow", "access.deny", "whatsapp.pair_phone"])
def test_a_phone_number_that_can_never_match_is_refused(tmp_path, where):
    section, key = where.split(".")
    value = '["+52 55 1234"]' if section == "access" else '"+52 55 1234"'
    config = tmp_path / "w.toml"
    config.write_text(f"[{section}]\n{key} = {value}\n")
    with pytest.raises(SettingsError, match=rf"{where}.*'\+52 55 1234' is not a valid phone"):
        load_settings(config)


def test_numbers_as_whatsapp_delivers_them_are_accepted(tmp_path):
    config = tmp_path / "w.toml"
    config.write_text('[access]\nallow = ["+52 1 55 1234 5678", "+525512345678", '
                      '"+5491123456789", "+34 612 34 56 78"]\n')
    assert load_settings(config).access.allow == [
        "+5215512345678", "+525512345678", "+5491123456789", "+34612345678"]


def run(tmp_path: Path, config: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "w.toml").write_text(config)
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "WABOT_CONFIG": str(tmp_path / "w.toml"),
               "WABOT_BUSINESS_FILE": str(ROOT / "config" / "business.example.yaml"), **env}
    return subprocess.run([sys.executable, "-m", "bot", "run"], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=60)


def one_line_without_traceback(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if "cannot start" in ln
              or "could not start" in ln]
    return line


LOCAL_LLM = '[llm]\nbase_url = "http://127.0.0.1:9/v1"\n'


def test_run_with_a_file_where_the_state_directory_should_be(tmp_path):
    (tmp_path / "data").write_text("oops")
    result = run(tmp_path, 'state_dir = "data"\n' + LOCAL_LLM)
    assert result.returncode == 78
    line = one_line_without_traceback(result)
    # The path as it resolves: relative paths start at the config file's folder (#24).
    assert (f"state_dir (WABOT_STATE_DIR): {tmp_path / 'data'} is a file, not a directory; "
            "fix:") in line


def test_run_with_a_state_directory_that_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("")
    result = run(tmp_path, 'state_dir = "file/data"\n' + LOCAL_LLM)
    assert result.returncode == 78
    line = one_line_without_traceback(result)
    assert "file/data cannot be created" in line and "mkdir -m 700" in line


def test_run_without_an_api_key_for_a_hosted_endpoint(tmp_path):
    result = run(tmp_path, 'state_dir = "data"\n[llm]\nbase_url = "https://openrouter.ai/api/v1"\n')
    assert result.returncode == 78
    line = one_line_without_traceback(result)
    assert "llm.api_key (OPENAI_API_KEY): no API key for https://openrouter.ai/api/v1; fix: set OPENAI_API_KEY" \
        in line


def test_run_with_the_database_down_is_one_line_and_exit_1_so_systemd_retries(tmp_path):
    result = run(tmp_path, 'state_dir = "data"\n'
                 'database_url = "postgresql://wabot:secret@127.0.0.1:1/wabot"\n' + LOCAL_LLM)
    assert result.returncode == 1
    line = one_line_without_traceback(result)
    assert "SQL database postgresql://wabot:***@127.0.0.1:1/wabot unreachable" in line
    assert "fix: check database_url (WABOT_DATABASE_URL)" in line
    assert "secret" not in result.stderr
