"""Issue #24 (Medium): `wabot-admin catalog import` (as the user wabot, who may not write
/etc/wabot) ended in an OSError traceback. It now says which file cannot be written, by whom
it can, and what to run, exits 77 (EX_NOPERM) and changes nothing; a profile it can write is
replaced whole (never half-written) and keeps its owner, group and mode."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app

PROFILE = "name: Panadería Rosa\nproducts:\n  - name: Concha\n    price: 12\n"
ROOT = os.geteuid() == 0


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder any user can read (pytest's own tmp_path is its user's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="wabot-catalog-"))
    folder.chmod(0o755)
    yield folder
    for path in (folder, *folder.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(folder)


def import_as_someone_else(shared: Path) -> subprocess.CompletedProcess[str]:
    """`catalog import` by a user who may read the profile but not write it or its folder,
    as `sudo -u wabot` meets the service's /etc/wabot (root:wabot, 0750 and 0640)."""
    etc = shared / "etc"
    etc.mkdir()
    profile = etc / "business.yaml"
    profile.write_text(PROFILE, encoding="utf-8")
    (shared / "products.csv").write_text("nombre,precio\nConcha,14\nBolillo,3\n")
    profile.chmod(0o644 if ROOT else 0o444)
    etc.chmod(0o755 if ROOT else 0o555)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WABOT_", "OPENAI_"))}
    env.update(WABOT_BUSINESS_FILE=str(profile), WABOT_STATE_DIR=str(shared / "state"))
    who = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if ROOT else []
    return subprocess.run(
        [*who, sys.executable, "-m", "bot", "catalog", "import", str(shared / "products.csv")],
        cwd=shared, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_a_profile_this_user_cannot_write_is_a_message_and_nothing_changes(shared) -> None:
    result = import_as_someone_else(shared)
    profile = shared / "etc" / "business.yaml"

    assert result.returncode == 77, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"cannot write the business profile {profile}" in result.stderr
    assert f"{shared / 'etc'} (" in result.stderr and "Nothing was changed" in result.stderr
    assert "fix: " in result.stderr and "catalog import" in result.stderr
    assert profile.read_text(encoding="utf-8") == PROFILE
    assert sorted(p.name for p in profile.parent.iterdir()) == ["business.yaml"]
    assert not (shared / "state").exists()


@pytest.fixture
def profile(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "etc" / "business.yaml"
    path.parent.mkdir()
    path.write_text(PROFILE, encoding="utf-8")
    monkeypatch.setenv("WABOT_BUSINESS_FILE", str(path))
    monkeypatch.setenv("WABOT_STATE_DIR", str(tmp_path / "state"))
    return path


def test_a_written_profile_is_replaced_whole_with_its_mode(profile, tmp_path) -> None:
    profile.chmod(0o640)
    (tmp_path / "products.csv").write_text("nombre,precio\nConcha,14\n")
    result = CliRunner().invoke(app, ["catalog", "import", str(tmp_path / "products.csv")])
    assert result.exit_code == 0, result.output
    assert "price: 14" in profile.read_text(encoding="utf-8")
    assert profile.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in profile.parent.iterdir()) == [
        "business.yaml", "business.yaml.bak"]  # no temporary file left behind


@pytest.mark.skipif(not ROOT, reason="what root running the import does")
def test_root_leaves_the_index_to_the_state_directorys_owner(profile, tmp_path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 65534, 65534)  # nobody's, as /var/lib/wabot is wabot's
    (tmp_path / "products.csv").write_text("nombre,precio\nConcha,14\n")
    result = CliRunner().invoke(app, ["catalog", "import", str(tmp_path / "products.csv")])
    assert result.exit_code == 0, result.output
    assert "not re-indexed as root" in result.output and "systemctl reload" in result.output
    assert list(state.iterdir()) == []  # no database made by root in the daemon's folder
