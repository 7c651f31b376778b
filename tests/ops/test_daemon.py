"""`wabot run` as systemd runs it: offline start-up, signals, sd_notify, exit codes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.gateway.memory import MemoryGateway
from bot.ops.daemon import EXIT_OK, EXIT_OPERATOR, serve
from bot.ops.sdnotify import Notifier
from tests.fakes.pipeline import BUSINESS, eventually, make_settings

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    """A loopback port nobody listens on: WhatsApp 'unreachable', without the internet."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def drain(sock: socket.socket) -> list[str]:
    got: list[str] = []
    sock.setblocking(False)
    while True:
        try:
            got.append(sock.recv(4096).decode())
        except BlockingIOError:
            return got


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        yield path, sock


def test_run_offline_retries_with_backoff_and_stops_cleanly_on_sigterm(
        tmp_path, notify_socket, openai_server):
    path, sock = notify_socket
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WABOT_", "OPENAI_"))}
    env.update({
        "WABOT_STATE_DIR": str(tmp_path / "state"),
        "WABOT_WHATSAPP__PROBE_HOST": "127.0.0.1",
        "WABOT_WHATSAPP__PROBE_PORT": str(closed_port()),
        "WABOT_WHATSAPP__BACKOFF_INITIAL": "1",
        "WABOT_WHATSAPP__BACKOFF_CAP": "2",
        "WABOT_STOP_GRACE_SECONDS": "5",
        "WABOT_HTTP__PORT": "0",  # the console: any free port
        "WABOT_LLM__BASE_URL": openai_server.base_url,
        "WABOT_BUSINESS_FILE": str(ROOT / "config" / "business.example.yaml"),
        "NOTIFY_SOCKET": path,
    })
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    delays: list[int] = []
    lines: list[str] = []
    deadline = time.monotonic() + 40
    try:
        assert proc.stderr is not None
        while len(delays) < 4 and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if m := re.search(r"unreachable .* retrying in (\d+) s", line):
                delays.append(int(m.group(1)))
        assert len(delays) == 4, "".join(lines)
        assert delays == sorted(delays) and delays[0] >= 1 and max(delays) <= 2  # capped
        assert not (tmp_path / "state" / "whatsapp-session.sqlite3").exists()  # Go untouched
        assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700  # it holds login keys
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        assert time.monotonic() - t0 < 5, "stop took longer than the grace period"
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    messages = drain(sock)
    assert "STATUS=starting\n" in messages
    assert any(m.startswith("STATUS=offline: WhatsApp unreachable (") and "retrying in" in m
               for m in messages)
    assert "STOPPING=1\n" in messages
    assert "READY=1\n" not in messages  # never connected, never ready
    assert "+52" not in "".join(lines)  # nothing unmasked leaked either



class ConnectingGateway(MemoryGateway):
    """The in-memory gateway with the daemon's connection signals."""

    def __init__(self) -> None:
        super().__init__()
        self.connected = asyncio.Event()


class Reason:
    def __init__(self, needs_operator: bool) -> None:
        self.needs_operator = needs_operator

    def __str__(self) -> str:
        return "logged_out" if self.needs_operator else "stopped"


async def test_ready_is_sent_only_once_connected(tmp_path, notify_socket, openai_server,
                                                 tenant):
    from bot.app import App

    path, sock = notify_socket
    settings = make_settings(f"sqlite:///{tmp_path / 'w.db'}", tmp_path, openai_server, tenant)
    gateway = ConnectingGateway()
    stop = asyncio.Event()
    app = App(settings, gateway, business=BUSINESS)
    task = asyncio.create_task(serve(app, gateway, Notifier(path), stop))
    await eventually(lambda: app._started)
    assert "READY=1\n" not in drain(sock)
    gateway.connected_as = "+5215512345678"
    gateway.connected.set()
    got: list[str] = []
    await eventually(lambda: got.extend(drain(sock)) or "READY=1\n" in got)
    assert "STATUS=connected as +52155****5678\n" in got
    stop.set()
    assert await asyncio.wait_for(task, 10) == EXIT_OK
    assert "STOPPING=1\n" in drain(sock)


async def test_a_logged_out_gateway_exits_78_so_systemd_does_not_hot_loop(
        tmp_path, notify_socket, openai_server, tenant):
    from bot.app import App

    path, sock = notify_socket
    settings = make_settings(f"sqlite:///{tmp_path / 'w.db'}", tmp_path, openai_server, tenant)
    gateway = ConnectingGateway()
    app = App(settings, gateway, business=BUSINESS)
    task = asyncio.create_task(serve(app, gateway, Notifier(path), asyncio.Event()))
    await eventually(lambda: gateway.started)
    gateway.finished.set_result(Reason(needs_operator=True))
    assert await asyncio.wait_for(task, 10) == EXIT_OPERATOR
    assert "STOPPING=1\n" in drain(sock)


def test_run_and_login_help_explain_qr_pair_code_and_state_dir():
    for command in ("run", "login"):
        result = subprocess.run([sys.executable, "-m", "bot", command, "--help"],
                                capture_output=True, text=True, timeout=60,
                                env={**os.environ, "COLUMNS": "120"})
        assert result.returncode == 0
        text = " ".join(result.stdout.split())
        for words in ("QR", "--pair-phone", "pair code", "WABOT_STATE_DIR", "0600"):
            assert words in text, (command, words)
