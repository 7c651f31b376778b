"""Issue #24 (Medium): `systemd/install.sh` copied the *example* files (a shoe shop,
`OPENAI_API_KEY=sk-replace-me`) into /etc/wabot, ignoring what `wabot init` wrote in the
checkout. It installs the owner's files now (config/wabot.toml, config/business.yaml, .env,
knowledge/), the examples only when there are none, and says which; the doctor flags the
example profile and the placeholder key when the examples are what got installed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.ops import setup
from bot.ops.doctor import check_business, check_llm
from bot.settings import load_settings
from tests.ops.test_systemd_units import UNITS, install

ROOT = UNITS.parent
OWNER = setup.Answers(name="Panadería Rosa", language="Spanish",
                      timezone="America/Mexico_City", hours="lun-sab 07:00-20:00",
                      api_key="sk-proj-the-owners-key")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A clone: the script, the units and the shipped examples."""
    root = tmp_path / "checkout"
    (root / "systemd").mkdir(parents=True)
    for name in ("install.sh", "wabot.service", "wabot@.service"):
        shutil.copy2(UNITS / name, root / "systemd" / name)
    shutil.copytree(ROOT / "config", root / "config")
    (root / "pyproject.toml").write_text("[project]\nname = 'wabot'\n")
    return root


def owners_setup(checkout: Path) -> None:
    """What `wabot init` writes, and a document the owner added."""
    setup.write_files(checkout, OWNER)
    (checkout / "knowledge").mkdir()
    (checkout / "knowledge" / "menu.md").write_text("# Conchas\n12 MXN\n", encoding="utf-8")


def test_the_owners_files_are_installed(checkout: Path, tmp_path: Path) -> None:
    owners_setup(checkout)
    root = tmp_path / "root"
    out = install(checkout, "--skip-venv", destdir=root)
    etc = root / "etc/wabot"

    assert (etc / "business.yaml").read_text() == (checkout / "config/business.yaml").read_text()
    assert (etc / "wabot.env").read_text() == "OPENAI_API_KEY=sk-proj-the-owners-key\n"
    assert (etc / "knowledge/menu.md").is_file()
    for name in ("wabot.toml", "wabot.env", "business.yaml", "knowledge/menu.md"):
        assert (etc / name).stat().st_mode & 0o777 == 0o640, name
    assert f"from {checkout}/config/wabot.toml (yours" in out
    assert f"from {checkout}/.env (yours" in out
    assert "example" not in out.split("== units")[0].split("== configuration")[1]
    # Nothing to edit first: the service is started.
    assert "(skipped under DESTDIR) systemctl enable --now --no-block wabot.service" in out

    # The settings name the service's places, whatever the working directory.
    settings = load_settings(etc / "wabot.toml")
    assert settings.state_dir == Path("/var/lib/wabot")
    assert settings.business_file == Path("/etc/wabot/business.yaml")
    assert settings.knowledge.dir == etc / "knowledge"
    assert settings.tenant == "default" and settings.followups.rules  # the rest as written
    check = check_business(settings.model_copy(update={"business_file": etc / "business.yaml"}))
    assert check.ok and "Panadería Rosa" in check.detail


def test_an_instance_gets_the_owners_files_under_its_name(checkout: Path, tmp_path: Path) -> None:
    owners_setup(checkout)
    root = tmp_path / "root"
    install(checkout, "--skip-venv", "--instance", "rosa", destdir=root)
    etc = root / "etc/wabot"
    assert (etc / "rosa.env").read_text() == "OPENAI_API_KEY=sk-proj-the-owners-key\n"
    assert load_settings(etc / "rosa.toml").state_dir == Path("/var/lib/wabot/rosa")


async def test_without_an_init_the_examples_are_installed_and_flagged(
        checkout: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    out = install(checkout, "--skip-venv", destdir=root)
    etc = root / "etc/wabot"

    assert "from the example" in out and "edit it" in out
    assert "Configuration is new or missing: edit it" in out  # not started
    settings = load_settings(etc / "wabot.toml")
    settings.business_file = etc / "business.yaml"
    business = check_business(settings)
    assert not business.ok and "example profile" in business.detail
    key = (etc / "wabot.env").read_text().split("OPENAI_API_KEY=")[1].split()[0]
    settings.llm.api_key = SecretStr(key)
    llm = await check_llm(settings, 1.0)
    assert not llm.ok and "placeholder" in llm.detail


def test_files_already_in_etc_are_kept(checkout: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    install(checkout, "--skip-venv", destdir=root)  # the examples, edited by hand since
    (root / "etc/wabot/business.yaml").write_text("name: Edited In Place\n")
    owners_setup(checkout)
    out = install(checkout, "--skip-venv", destdir=root)
    assert (root / "etc/wabot/business.yaml").read_text() == "name: Edited In Place\n"
    assert f"keep {root}/etc/wabot/business.yaml" in out

