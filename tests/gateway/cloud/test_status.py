"""`wabot status` on the Cloud API transport: the number as Graph shows it (masked) and
the transport in use; what is known when Graph cannot be reached."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.fakes import meta_webhooks as meta
from tests.fakes.graph_server import FakeGraph

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, graph_server: FakeGraph,
        tenant: str) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith(("WABOT_", "OPENAI_")) and not name.startswith("WABOT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    values = {"WABOT_STATE_DIR": str(tmp_path / "state"), "WABOT_TENANT": tenant,
              "WABOT_DATABASE_URL": f"sqlite:///{tmp_path / 'wabot.db'}",
              "WABOT_LLM__API_KEY": "test",
              "WABOT_BUSINESS_FILE": str(ROOT / "config" / "business.example.yaml"),
              "WABOT_WHATSAPP__TRANSPORT": "cloud",
              "WABOT_CLOUD__PHONE_NUMBER_ID": graph_server.phone_number_id,
              "WABOT_CLOUD__ACCESS_TOKEN": graph_server.token,
              "WABOT_CLOUD__APP_SECRET": meta.APP_SECRET,
              "WABOT_CLOUD__VERIFY_TOKEN": meta.VERIFY_TOKEN,
              "WABOT_CLOUD__GRAPH_URL": graph_server.graph_url}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def test_status_shows_the_cloud_number_masked_and_the_transport(
        env: dict[str, str], graph_server: FakeGraph) -> None:
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 3, result.output  # the daemon is not running
    assert "whatsapp      connected as +15550****0199 (Cloud API)" in result.output
    assert "transport     Cloud API" in result.output
    [asked] = [c for c in graph_server.calls if c.method == "GET"]
    assert asked.path.endswith("/" + graph_server.phone_number_id)
    as_json = json.loads(CliRunner().invoke(app, ["status", "--json"]).output)
    assert as_json["transport"] == "cloud" and as_json["connected_as"] == "+15550100199"


def test_status_says_what_is_known_when_graph_is_unreachable(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setenv("WABOT_CLOUD__GRAPH_URL", f"http://127.0.0.1:{closed}/v21.0")
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 3, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("whatsapp"))
    assert f"phone number id {env['WABOT_CLOUD__PHONE_NUMBER_ID']}" in line
    assert "Graph API not reachable" in line


def test_a_refused_token_is_said_not_hidden(env: dict[str, str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WABOT_CLOUD__ACCESS_TOKEN", "expired")
    result = CliRunner().invoke(app, ["status"])
    line = next(x for x in result.output.splitlines() if x.startswith("whatsapp"))
    assert "Graph API not reachable" in line and "190" in line
    assert "expired" not in result.output  # the token itself is never shown


async def test_the_daemon_learns_its_number_for_the_console_and_the_heartbeat(
        tmp_path: Path, openai_server, graph_server: FakeGraph, tenant: str) -> None:
    from tests.fakes.pipeline import eventually
    from tests.gateway.cloud.test_webhook import Cloud, cloud_settings

    settings = cloud_settings(f"sqlite:///{tmp_path / 'wabot.db'}", tmp_path, openai_server,
                              graph_server, tenant)
    cloud = Cloud(settings, graph_server)
    await cloud.app.start()
    try:
        await eventually(lambda: cloud.gateway.connected_as is not None)
        assert cloud.gateway.connected_as == "+15550100199"
        assert cloud.app.console.connection()["status"] == "connected as +15550****0199"
    finally:
        await cloud.app.stop()
        await cloud.http.aclose()


async def test_an_unreachable_graph_at_start_leaves_the_number_unknown(
        tmp_path: Path, openai_server, graph_server: FakeGraph, tenant: str) -> None:
    from tests.gateway.cloud.test_webhook import Cloud, cloud_settings

    settings = cloud_settings(f"sqlite:///{tmp_path / 'wabot.db'}", tmp_path, openai_server,
                              graph_server, tenant)
    graph_server.token = "rotated"  # Graph refuses ours: 401, error 190, not retried
    cloud = Cloud(settings, graph_server)
    await cloud.app.start()
    try:
        assert cloud.gateway._learning is not None
        await cloud.gateway._learning
        assert cloud.gateway.connected_as is None
        assert cloud.app.console.connection()["status"] == "connected"
    finally:
        await cloud.app.stop()
        await cloud.http.aclose()
