"""Issue #24 (Medium): with the database locked on the Cloud API path, webhooks were
answered 500 (Meta redelivers, nothing lost) but the owner was not alerted, as the README
promises. Now the first refused message alerts the owner (once), and the first one
recorded again says the database is back."""

from __future__ import annotations

from pathlib import Path

from tests.fakes import meta_webhooks as meta
from tests.fakes.graph_server import FakeGraph
from tests.fakes.openai_server import FakeOpenAI
from tests.gateway.cloud.test_webhook import T0, WA, Cloud, cloud_settings
from tests.regressions.test_sqlite_journal_failure_loses_the_message import rename

OWNER_WA = "5215599998888"


async def test_a_journal_failure_on_the_cloud_path_alerts_the_owner(
        tmp_path: Path, openai_server: FakeOpenAI, graph_server: FakeGraph,
        tenant: str) -> None:
    settings = cloud_settings(f"sqlite:///{tmp_path / 'wabot.db'}", tmp_path, openai_server,
                              graph_server, tenant)
    settings = settings.model_copy(update={"alerts": settings.alerts.model_copy(
        update={"owner_number": "+" + OWNER_WA})})
    c = Cloud(settings, graph_server)
    await c.app.start()
    try:
        assert await c.post(meta.text(OWNER_WA, "hola", at=T0)) == 200  # the owner's window
        await c.settle()
        await rename(tmp_path / "wabot.db", "journal", "journal_away")
        for n in (1, 2):
            payload = meta.text(WA, "¿abren hoy?", msg_id=f"wamid.L{n}", at=T0 + n)
            assert await c.post(payload) == 500  # Meta delivers it again
        await c.app.unit.intake.stop(0)  # the alert went out without holding the webhook
        kinds = [a["kind"] for a in c.app.unit.alerts.recent]
        assert kinds == ["journal"]  # once, not per message
        assert any("database is not accepting messages" in t
                   for t in graph_server.texts(OWNER_WA))
        await rename(tmp_path / "wabot.db", "journal_away", "journal")
        assert await c.post(meta.text(WA, "¿abren hoy?", msg_id="wamid.L1", at=T0 + 1)) == 200
        await c.app.unit.intake.stop(0)
        assert [a["kind"] for a in c.app.unit.alerts.recent] == ["journal_back", "journal"]
    finally:
        await c.settle()
        await c.app.stop()
        await c.http.aclose()
