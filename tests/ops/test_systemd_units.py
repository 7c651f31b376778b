"""The systemd units are valid and hardened, and install.sh does what it prints.

`systemd-analyze verify` fails a unit whose ExecStart does not exist, and /opt/wabot/venv
only exists on an installed host. So the unit is verified as a copy whose ExecStart points
at an executable stub at the same relative place under tmp_path: only that path prefix
changes, every other line is checked as shipped (against the host's real units such as
network-online.target). verify exits 0 even on "Unknown key" or unparsable values, so any
output at all counts as a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
INSTALL = UNITS / "install.sh"
EXEC_START = "ExecStart=/opt/wabot/venv/bin/wabot run"
MAX_EXPOSURE = 2.0

# shipped file → the name it is checked under (a template only makes sense as an instance).
CHECKED_AS = {"wabot.service": "wabot.service", "wabot@.service": "wabot@shop1.service"}

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "--no-pager", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_LOG_COLOR": "0"},
        timeout=60,
        check=False,
    )


def staged(tmp_path: Path, shipped: str, text: str | None = None) -> Path:
    unit = tmp_path / CHECKED_AS[shipped]
    unit.write_text((UNITS / shipped).read_text() if text is None else text)
    return unit


def verifiable(tmp_path: Path, shipped: str) -> Path:
    """A copy of the unit whose ExecStart is an executable stub under tmp_path."""
    text = (UNITS / shipped).read_text()
    assert EXEC_START in text.splitlines()
    stub = tmp_path / "opt/wabot/venv/bin/wabot"
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    return staged(tmp_path, shipped, text.replace("ExecStart=/opt/", f"ExecStart={tmp_path}/opt/"))


def exposure(output: str) -> float:
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
    assert match, output
    return float(match.group(1))


@needs_systemd_analyze
@pytest.mark.parametrize("shipped", CHECKED_AS)
def test_exposure_is_ok(tmp_path: Path, shipped: str) -> None:
    result = analyze("security", "--offline=true", str(staged(tmp_path, shipped)))

    assert exposure(result.stdout) <= MAX_EXPOSURE, result.stdout


@needs_systemd_analyze
@pytest.mark.parametrize("shipped", CHECKED_AS)
def test_verify_is_clean(tmp_path: Path, shipped: str) -> None:
    result = analyze("verify", str(verifiable(tmp_path, shipped)))

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_systemd_analyze
def test_verify_as_run_here_reports_a_broken_setting(tmp_path: Path) -> None:
    # Guards the guard: a typo must make test_verify_is_clean fail.
    unit = verifiable(tmp_path, "wabot.service")
    unit.write_text(unit.read_text().replace("KillMode=mixed", "KillMode=mixd"))

    result = analyze("verify", str(unit))

    assert "mixd" in result.stdout + result.stderr


def service_section(shipped: str) -> list[str]:
    text = (UNITS / shipped).read_text()
    body = text.split("\n[Service]\n", 1)[1].split("\n[Install]\n", 1)[0]
    return [line for line in body.splitlines() if line and not line.startswith("#")]


def test_template_differs_only_in_instance_paths() -> None:
    single, template = service_section("wabot.service"), service_section("wabot@.service")
    only_template = [line for line in template if line not in single]
    only_single = [line for line in single if line not in template]

    assert only_single == [
        "Environment=WABOT_CONFIG=/etc/wabot/wabot.toml",
        "Environment=WABOT_STATE_DIR=/var/lib/wabot",
        "EnvironmentFile=-/etc/wabot/wabot.env",
        "SyslogIdentifier=wabot",
        "StateDirectory=wabot",
    ]
    assert only_template == [
        "Environment=WABOT_CONFIG=/etc/wabot/%i.toml",
        "Environment=WABOT_STATE_DIR=/var/lib/wabot/%i",
        "Environment=WABOT_TENANT=%i",
        "EnvironmentFile=-/etc/wabot/%i.env",
        "SyslogIdentifier=wabot@%i",
        "StateDirectory=wabot/%i",
    ]


# --- install.sh -------------------------------------------------------------------------------


def test_install_script_parses() -> None:
    subprocess.run(["bash", "-n", str(INSTALL)], check=True, timeout=30)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A minimal checkout: the script, the units and the example configuration."""
    root = tmp_path / "checkout"
    (root / "systemd").mkdir(parents=True)
    (root / "config").mkdir()
    for name in ("install.sh", "wabot.service", "wabot@.service"):
        shutil.copy2(UNITS / name, root / "systemd" / name)
    (root / "pyproject.toml").write_text("[project]\nname = 'wabot'\n")
    for name in ("wabot.example.toml", "business.example.yaml", "wabot.env.example"):
        (root / "config" / name).write_text(f"# {name}\n")
    return root


def install(checkout: Path, *args: str, destdir: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DESTDIR"}
    if destdir is not None:
        env["DESTDIR"] = str(destdir)
    result = subprocess.run(
        ["bash", str(checkout / "systemd/install.sh"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_dry_run_prints_every_step_and_changes_nothing(checkout: Path, tmp_path: Path) -> None:
    out = install(checkout, "--dry-run", destdir=tmp_path / "root")

    for step in (
        "-m venv",
        "pip install --quiet --upgrade " + str(checkout),
        "/etc/wabot/wabot.env",
        "wabot.service /",
        "systemctl daemon-reload",
        "systemctl try-restart",
    ):
        assert step in out
    assert not (tmp_path / "root").exists()


def test_destdir_install_keeps_operator_files_and_is_idempotent(
    checkout: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    first = install(checkout, "--skip-venv", destdir=root)
    env = root / "etc/wabot/wabot.env"
    env.write_text("OPENAI_API_KEY=edited\n")
    second = install(checkout, "--skip-venv", destdir=root)

    # As advice (config is new), and --no-block: start-up may wait for a QR scan.
    assert "systemctl enable --now --no-block wabot.service   # start-up may wait" in first
    assert "(skipped under DESTDIR) systemctl enable --now --no-block wabot.service" in second
    assert env.read_text() == "OPENAI_API_KEY=edited\n"
    assert env.stat().st_mode & 0o777 == 0o640
    assert (root / "etc/wabot").stat().st_mode & 0o777 == 0o750
    assert (root / "var/lib/wabot").stat().st_mode & 0o777 == 0o700
    installed = root / "etc/systemd/system/wabot@.service"
    assert installed.read_text() == (UNITS / "wabot@.service").read_text()


def test_instance_install_uses_its_own_files(checkout: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    out = install(checkout, "--skip-venv", "--instance", "shop1", destdir=root)

    assert (root / "etc/wabot/shop1.toml").is_file()
    assert (root / "etc/wabot/shop1.env").is_file()
    assert (root / "var/lib/wabot/shop1").is_dir()
    assert "systemctl enable --now --no-block wabot@shop1.service" in out


def test_instance_names_that_are_not_plain_are_refused(checkout: Path) -> None:
    result = subprocess.run(
        ["bash", str(checkout / "systemd/install.sh"), "--dry-run", "--instance", "../etc"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert "instance name" in result.stderr


def test_a_python_without_venv_support_is_named_before_anything_changes(
    checkout: Path, tmp_path: Path
) -> None:
    # Debian/Ubuntu's python3 without the python3-venv package: no ensurepip.
    fake = tmp_path / "python3"
    fake.write_text('#!/bin/sh\ncase "$*" in *ensurepip*) exit 1;; *) exit 0;; esac\n')
    fake.chmod(0o755)
    env = {**os.environ, "DESTDIR": str(tmp_path / "root"), "PYTHON": str(fake)}
    result = subprocess.run(["bash", str(checkout / "systemd/install.sh")], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "apt-get install python3-venv" in result.stderr
    assert not (tmp_path / "root").exists()
