"""The server's life: extra routers, a taken port, the doctor's line, and `wabot run` offline."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter

from bot.clock import VirtualClock
from bot.gateway.memory import MemoryGateway
from bot.settings import load_settings
from bot.web.console_check import check_console
from bot.web.server import ConsoleError
from tests.fakes.pipeline import START, make_settings, pipeline
from tests.web.conftest import TOKEN, client

ROOT = Path(__file__).resolve().parents[2]


async def test_extra_routers_are_mounted_outside_the_token(console_settings):
    hook = APIRouter(prefix="/webhooks/whatsapp")

    @hook.get("")
    async def verify(challenge: str = "") -> str:
        return challenge

    other = APIRouter(prefix="/webhooks/other")

    @other.post("")
    async def receive() -> dict[str, bool]:
        return {"received": True}

    class RoutingGateway(MemoryGateway):
        routers = (other,)  # what a webhook-receiving transport offers

    clock = VirtualClock(START)
    async with pipeline(console_settings, clock=clock, gateway=RoutingGateway(clock),
                        serve_http=True, extra_routers=[hook]) as p, \
            client(p, token=None) as anon:
        resp = await anon.get("/webhooks/whatsapp", params={"challenge": "42"})
        assert resp.status_code == 200 and resp.json() == "42"
        assert (await anon.post("/webhooks/other")).json() == {"received": True}
        assert (await anon.get("/api/v1/status")).status_code == 401  # the API still is not


async def test_a_taken_port_fails_the_start_saying_what_to_change(db_url, tmp_path,
                                                                  openai_server, tenant):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = make_settings(db_url, tmp_path, openai_server, tenant,
                                 http={"port": port, "api_token": TOKEN})
        with pytest.raises(ConsoleError, match="WABOT_HTTP__PORT"):
            async with pipeline(settings, serve_http=True):
                pass
        ok, detail, fix = await check_console(settings, 1.0)
        assert not ok and "taken by another program" in detail and "http.port" in fix


async def test_doctor_recognises_the_running_console(served):
    settings = served.settings.model_copy(deep=True)
    settings.http.port = served.app.web.port
    ok, detail, _ = await check_console(settings, 2.0)
    assert ok and "served by the running daemon" in detail


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_with_whatsapp_unreachable_serves_the_console_and_stops_on_sigterm(
        tmp_path, openai_server):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WABOT_", "OPENAI_"))}
    env.update({
        "WABOT_STATE_DIR": str(tmp_path / "state"),
        "WABOT_WHATSAPP__PROBE_HOST": "127.0.0.1",
        "WABOT_WHATSAPP__PROBE_PORT": str(closed_port()),
        "WABOT_WHATSAPP__BACKOFF_INITIAL": "1",
        "WABOT_WHATSAPP__BACKOFF_CAP": "4",
        "WABOT_STOP_GRACE_SECONDS": "5",
        "WABOT_HTTP__PORT": "0",
        "WABOT_LLM__BASE_URL": openai_server.base_url,
        "WABOT_BUSINESS_FILE": str(ROOT / "config" / "business.example.yaml"),
    })
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        url = ""
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if m := re.search(r"console listening on (http://\S+)", line):
                url = m.group(1)
            if url and "retrying in" in line:
                break
        assert url, "".join(lines)
        token = (tmp_path / "state" / "console-token").read_text().strip()
        settings = load_settings(None, state_dir=tmp_path / "state")
        assert settings.http.api_token is None  # the token came from the generated file
        with httpx.Client(base_url=url, timeout=5) as web:
            assert web.get("/healthz").json()["ok"] is True
            status = web.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"})
            conn = status.json()["connection"]
            assert conn["connected"] is False and "retrying in" in conn["status"]
            web.post("/login", data={"token": token})
            page = web.get("/", headers={"Accept": "text/html"}).text
            assert "unreachable" in page or "retrying in" in page  # why it is not connected
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        assert time.monotonic() - t0 < 5, "stop took longer than the grace period"
        assert proc.returncode == 0, err
        assert "wabot stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
