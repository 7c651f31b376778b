"""A catalog picture `../outside/x.png`, an absolute path, a symlink out of the knowledge
folder or an `http://127.0.0.1/…` URL was uploaded and sent to a customer, and `catalog
import` accepted `../`, `/etc/passwd` and `file://` without a word. The README promises "a
file under the knowledge folder or an https URL": now enforced at import and at send."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.agents.tools import TurnContext
from bot.business import Product
from bot.cli import app
from bot.clock import VirtualClock
from bot.gateway.memory import MemoryGateway
from bot.knowledge.index_sqlite import SqliteKnowledgeIndex
from bot.knowledge.library import Library
from bot.knowledge.tools import MediaTool
from bot.models import CustomerKey, Stage
from bot.stores.customers import CustomerStore
from bot.stores.db import Database
from bot.stores.memory_sql import SqlMemoryStore
from tests.knowledge.data import PNG_1PX
from tests.knowledge.test_tools import picture_server  # noqa: F401  (fixture)

KEY = CustomerKey("shop", "+5215511112222")


@pytest.fixture
async def shop(tmp_path: Path, picture_server: str  # noqa: F811
               ) -> AsyncIterator[tuple[MediaTool, TurnContext, MemoryGateway]]:
    kb, outside = tmp_path / "kb", tmp_path / "outside"
    kb.mkdir()
    outside.mkdir()
    (outside / "x.png").write_bytes(PNG_1PX)
    (kb / "ok.png").write_bytes(PNG_1PX)
    (kb / "link.png").symlink_to(outside / "x.png")
    port = picture_server.rsplit(":", 1)[1]
    pictures = {"Escaping": "../outside/x.png", "Absolute": str(outside / "x.png"),
                "Linked": "link.png", "Loopback": f"{picture_server}/p.png",
                "Https loopback": f"https://127.0.0.1:{port}/p.png",
                "Localhost": f"https://localhost:{port}/p.png",
                "File url": f"file://{outside / 'x.png'}", "Fine": "ok.png"}
    products = [Product(name=name, price=1, image=image) for name, image in pictures.items()]
    db = Database(f"sqlite:///{tmp_path / 'wabot.db'}")
    memory = SqlMemoryStore(db)
    await memory.start()
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    library = Library(SqliteKnowledgeIndex(db), "shop", lambda: products, kb, VirtualClock(now))
    await library.start()
    await library.sync()
    gateway = MemoryGateway()
    yield (MediaTool(library, gateway, max_bytes=4096),
           TurnContext(KEY, now, Stage.LEAD, CustomerStore(db), memory), gateway)
    await memory.close()
    await db.close()


@pytest.mark.parametrize(("product", "why"), [
    ("Escaping", "outside the knowledge folder"),
    ("Absolute", "a picture is a file under the knowledge folder"),
    ("Linked", "outside the knowledge folder"),
    ("Loopback", "must be https"),
    ("Https loopback", "private or local address"),
    ("Localhost", "private or local address"),
    ("File url", "must be https"),
])
async def test_a_picture_from_outside_is_refused_at_send(shop, product, why):
    tool, ctx, gateway = shop
    result = json.loads(await tool.run(ctx, {"product": product}))
    assert why in result["error"]
    assert gateway.media_sent == []


async def test_a_picture_inside_the_folder_is_still_sent(shop):
    tool, ctx, gateway = shop
    assert json.loads(await tool.run(ctx, {"product": "Fine"}))["ok"] is True
    [(_, media)] = gateway.media_sent
    assert media.data == PNG_1PX


@pytest.mark.parametrize("image", ["../outside/x.png", "/etc/passwd", "file:///etc/passwd",
                                   "http://127.0.0.1/x.png", "https://10.0.0.7/x.png",
                                   "notes.txt"])
def test_catalog_import_refuses_a_picture_from_outside(tmp_path, monkeypatch, image):
    profile = tmp_path / "business.yaml"
    profile.write_text("name: Casa Azul\nproducts: []\n")
    monkeypatch.setenv("WABOT_BUSINESS_FILE", str(profile))
    monkeypatch.setenv("WABOT_KNOWLEDGE__DIR", str(tmp_path / "knowledge"))
    rows = tmp_path / "products.csv"
    rows.write_text(f"name,price,image\nMochila,100,{image}\nGorra,50,gorra.png\n")
    result = CliRunner().invoke(app, ["catalog", "import", str(rows)])
    assert result.exit_code == 2, result.output
    assert "Mochila:" in result.output and "Gorra" not in result.output
    assert "products: []" in profile.read_text()
