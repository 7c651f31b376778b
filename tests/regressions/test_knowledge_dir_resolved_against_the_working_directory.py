"""Issue #24 (Medium): under the systemd unit (working directory `/`) `knowledge.dir =
"knowledge"` meant `/knowledge`, and every other relative path of the settings followed the
working directory too. Relative paths now start at the project folder: the config file's
folder, or the one above it when that is `config/` (`wabot init`'s layout), whichever source
gave them (the TOML file, the environment, `.env`, an instance's env file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import load_settings


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir("/")  # as under systemd
    return tmp_path


def test_the_service_layout_reads_beside_its_config_file(elsewhere) -> None:
    etc = elsewhere / "etc" / "wabot"
    etc.mkdir(parents=True)
    (etc / "wabot.toml").write_text('state_dir = "state"\n\n[knowledge]\ndir = "knowledge"\n')
    settings = load_settings(etc / "wabot.toml")
    assert settings.knowledge.dir == etc / "knowledge"
    assert settings.state_dir == etc / "state"


def test_the_init_layout_reads_from_the_project_folder(elsewhere) -> None:
    project = elsewhere / "bakery"
    (project / "config").mkdir(parents=True)
    (project / "config" / "wabot.toml").write_text(
        'state_dir = "data"\nbusiness_file = "config/business.yaml"\n')
    (project / ".env").write_text("OPENAI_API_KEY=sk-from-the-project\n")
    settings = load_settings(project / "config" / "wabot.toml")
    assert settings.state_dir == project / "data"
    assert settings.business_file == project / "config" / "business.yaml"
    assert settings.knowledge.dir == project / "knowledge"  # the default, too
    assert settings.sql_url == f"sqlite:///{project / 'data' / 'wabot.db'}"
    key = settings.llm.api_key
    assert key is not None and key.get_secret_value() == "sk-from-the-project"


def test_the_profile_init_wrote_is_found_without_business_file(elsewhere) -> None:
    project = elsewhere / "bakery"
    (project / "config").mkdir(parents=True)
    (project / "config" / "wabot.toml").write_text('tenant = "rosa"\n')
    (project / "config" / "business.yaml").write_text("name: Panadería Rosa\n")
    settings = load_settings(project / "config" / "wabot.toml")
    assert settings.business_file == project / "config" / "business.yaml"


def test_an_instance_env_file_resolves_like_its_config(elsewhere, monkeypatch) -> None:
    etc = elsewhere / "etc" / "wabot"
    etc.mkdir(parents=True)
    (etc / "shop1.toml").write_text('tenant = "shop1"\n')
    # What systemd passes from EnvironmentFile=/etc/wabot/shop1.env
    monkeypatch.setenv("WABOT_CONFIG", str(etc / "shop1.toml"))
    monkeypatch.setenv("WABOT_KNOWLEDGE__DIR", "shop1-knowledge")
    monkeypatch.setenv("WABOT_BUSINESS_FILE", "shop1.yaml")
    settings = load_settings()
    assert settings.knowledge.dir == etc / "shop1-knowledge"
    assert settings.business_file == etc / "shop1.yaml"


def test_absolute_paths_and_no_config_file_are_as_given(elsewhere, monkeypatch) -> None:
    etc = elsewhere / "etc"
    etc.mkdir()
    (etc / "wabot.toml").write_text(f'state_dir = "{elsewhere / "state"}"\n')
    assert load_settings(etc / "wabot.toml").state_dir == elsewhere / "state"
    monkeypatch.chdir(elsewhere)  # no config/wabot.toml here: the working directory
    assert load_settings().state_dir == Path("data")


def test_a_knowledge_file_instead_of_a_folder_is_refused(elsewhere) -> None:
    from bot.settings import SettingsError

    (elsewhere / "knowledge").write_text("not a folder")
    (elsewhere / "wabot.toml").write_text("")
    with pytest.raises(SettingsError, match=r"knowledge.dir: .*knowledge is a file"):
        load_settings(elsewhere / "wabot.toml")
