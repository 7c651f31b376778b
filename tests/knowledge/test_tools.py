"""The agent's knowledge tools at their edges: sizes, missing pictures, URLs, and the
prompt's featured-products budget."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.agents.prompt import business_block
from bot.agents.tools import TurnContext
from bot.business import Business, Product
from bot.clock import VirtualClock
from bot.gateway.memory import MemoryGateway
from bot.knowledge.index_sqlite import SqliteKnowledgeIndex
from bot.knowledge.library import Library
from bot.knowledge.pictures import UrlPolicy
from bot.knowledge.tools import MediaTool, search_tool
from bot.models import CustomerKey, Stage
from bot.stores.customers import CustomerStore
from bot.stores.db import Database
from bot.stores.memory_base import estimate_tokens
from bot.stores.memory_sql import SqlMemoryStore
from tests.knowledge.data import PNG_1PX

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
KEY = CustomerKey("shop", "+5215511112222")


@pytest.fixture
def picture_server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving a picture, a huge file and a 404."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = {"/p.png": PNG_1PX, "/huge.png": PNG_1PX + b"0" * 5000}.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
async def setup(tmp_path: Path, picture_server: str) -> AsyncIterator[
        tuple[Library, MediaTool, TurnContext, MemoryGateway]]:
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "red.png").write_bytes(PNG_1PX)
    (tmp_path / "kb" / "big.pdf").write_bytes(b"%PDF" + b"0" * 5000)
    (tmp_path / "kb" / "fake.png").write_bytes(b"not a picture")
    products = [Product(name="Red Shoe", price=10, image="red.png"),
                Product(name="Plain Cap", price=5),
                Product(name="Web Hat", price=7, image=f"{picture_server}/p.png"),
                Product(name="Huge Hat", price=7, image=f"{picture_server}/huge.png"),
                Product(name="Gone Hat", price=7, image=f"{picture_server}/missing.png"),
                Product(name="Fake Pic", price=1, image="fake.png")]
    db = Database(f"sqlite:///{tmp_path / 'wabot.db'}")
    memory = SqlMemoryStore(db)
    await memory.start()
    library = Library(SqliteKnowledgeIndex(db), "shop", lambda: products, tmp_path / "kb",
                      VirtualClock(NOW))
    await library.start()
    await library.sync()
    gateway = MemoryGateway()
    ctx = TurnContext(KEY, NOW, Stage.LEAD, CustomerStore(db), memory)
    # The picture server is plain http on 127.0.0.1: allowed here, refused in production
    # (tests/regressions/test_product_pictures_read_from_anywhere.py).
    local = UrlPolicy(https_only=False, public_only=False)
    yield library, MediaTool(library, gateway, max_bytes=4096, urls=local), ctx, gateway
    await memory.close()
    await db.close()


@pytest.mark.parametrize(("args", "error"), [
    ({"product": "Plain Cap"}, "Plain Cap has no picture"),
    ({"product": "Huge Hat"}, "over the 4096-byte limit"),
    ({"product": "Gone Hat"}, "the picture's URL answered 404"),
    ({"product": "Fake Pic"}, "is not a JPEG, PNG, WebP or GIF"),
    ({"document": "big.pdf"}, "big.pdf is 5004 bytes, over the 4096-byte limit"),
    ({"product": "bicycle"}, "no product matches 'bicycle'"),
])
async def test_what_cannot_be_sent_is_a_clear_answer_and_nothing_is_sent(
        setup: tuple[Library, MediaTool, TurnContext, MemoryGateway],
        args: dict[str, str], error: str) -> None:
    _, tool, ctx, gateway = setup
    result = json.loads(await tool.run(ctx, args))
    assert error in result["error"]
    assert gateway.media_sent == []


async def test_a_picture_by_url_is_downloaded_and_sent(
        setup: tuple[Library, MediaTool, TurnContext, MemoryGateway]) -> None:
    _, tool, ctx, gateway = setup
    result = json.loads(await tool.run(ctx, {"product": "web hat"}))
    assert result["ok"] is True
    [(_, media)] = gateway.media_sent
    assert (media.data, media.filename, media.caption) == (PNG_1PX, "p.png", "Web Hat")


async def test_a_failed_send_is_reported_and_not_recorded(
        setup: tuple[Library, MediaTool, TurnContext, MemoryGateway]) -> None:
    _, tool, ctx, gateway = setup
    gateway.fail_sends = True
    result = json.loads(await tool.run(ctx, {"product": "Red Shoe"}))
    assert "could not be sent" in result["error"]
    assert await ctx.memory.window(KEY, 1000) == []


async def test_exactly_one_of_product_or_document(
        setup: tuple[Library, MediaTool, TurnContext, MemoryGateway]) -> None:
    _, tool, ctx, _ = setup
    with pytest.raises(ValueError, match="exactly one"):
        await tool.run(ctx, {"product": "Red Shoe", "document": "big.pdf"})


async def test_search_tool_says_when_nothing_is_found(
        setup: tuple[Library, MediaTool, TurnContext, MemoryGateway]) -> None:
    library, _, ctx, _ = setup
    tool = search_tool(library, 3)
    empty = json.loads(await tool.run(ctx, {"query": "bicycle"}))
    assert empty["results"] == [] and "Never guess" in empty["note"]
    [shoe] = json.loads(await tool.run(ctx, {"query": "red shoes"}))["results"]
    assert shoe == {"type": "product", "name": "Red Shoe", "price": 10.0, "currency": "",
                    "availability": "not tracked", "has_picture": True, "source": "catalog"}


def test_featured_products_come_first_within_the_budget() -> None:
    products = [Product(name=f"Item {i}", price=i, description="x" * 80) for i in range(500)]
    products[300] = Product(name="Star Item", price=1, featured=True)
    business = Business(name="Shop", products=products)
    block = business_block(business, NOW, featured_tokens=200)
    lines = block.splitlines()
    start = lines.index("Featured products:")
    assert lines[start + 1] == "- Star Item — 1"
    listed = [line for line in lines if line.startswith("- ")]
    assert estimate_tokens("\n".join(listed)) <= 200
    assert f"…and {500 - len(listed)} more products: call search_knowledge" in block
    everything = business_block(business, NOW)  # no search tool: the whole list, as before
    assert everything.count("\n- ") == 500


def test_a_file_given_as_the_knowledge_folder_fails_at_start(tmp_path: Path) -> None:
    from bot.settings import SettingsError, load_settings

    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(SettingsError, match=r"knowledge\.dir: .*notes\.md is a "
                                            r"file.*WABOT_KNOWLEDGE__DIR"):
        load_settings(None, knowledge={"dir": str(tmp_path / "notes.md")})
    assert load_settings(None, knowledge={"dir": str(tmp_path / "missing")}).knowledge.dir
