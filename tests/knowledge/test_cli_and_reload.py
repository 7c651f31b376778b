"""`wabot knowledge reindex | search`, and the daemon's re-index on SIGHUP."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bot.app import App
from bot.cli import app
from bot.clock import VirtualClock
from bot.gateway.memory import MemoryGateway
from bot.knowledge.index_base import DOCUMENT
from bot.ops.daemon import install_signals
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pipeline import START, make_settings
from tests.knowledge.data import RETURNS_DOC, pdf_bytes


@pytest.fixture
def shop_dir(tmp_path: Path, openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
             db_url: str, tenant: str) -> Path:
    for name in list(os.environ):
        if name.startswith(("WABOT_", "OPENAI_")) and not name.startswith("WABOT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "knowledge").mkdir()
    (tmp_path / "knowledge" / "devoluciones.md").write_text(RETURNS_DOC, encoding="utf-8")
    (tmp_path / "knowledge" / "precios.pdf").write_bytes(pdf_bytes(["Mayoreo desde 12 piezas"]))
    profile = {"name": "Tienda Norte", "products": [
        {"name": "Zapato Rojo Clásico", "price": 1200, "currency": "MXN", "sku": "ZR-1",
         "stock": 0}]}
    (tmp_path / "business.yaml").write_text(yaml.safe_dump(profile), encoding="utf-8")
    for k, v in {"WABOT_STATE_DIR": str(tmp_path / "state"), "WABOT_DATABASE_URL": db_url,
                 "WABOT_TENANT": tenant, "WABOT_LLM__BASE_URL": openai_server.base_url,
                 "WABOT_LLM__API_KEY": "test",
                 "WABOT_BUSINESS_FILE": str(tmp_path / "business.yaml")}.items():
        monkeypatch.setenv(k, v)
    return tmp_path


def wabot(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_reindex_then_search_prints_what_the_agent_gets(shop_dir: Path, tenant: str) -> None:
    result = wabot("knowledge", "reindex")
    assert result.exit_code == 0, result.output
    assert "3 source(s) indexed (4 items)" in result.output
    found = wabot("knowledge", "search", "zapatos rojos")
    assert found.exit_code == 0, found.output
    assert "1. Zapato Rojo Clásico [ZR-1] — 1200 MXN, out of stock" in found.output
    policy = wabot("knowledge", "search", "plazo para devolver", "--scope", "documents")
    assert "devoluciones.md › Política de devoluciones › Plazo para devolver" in policy.output
    pdf = wabot("knowledge", "search", "mayoreo", "--json")
    assert '"section": "page 1"' in pdf.output and "Mayoreo desde 12 piezas" in pdf.output
    again = wabot("knowledge", "reindex", "--changed")
    assert "0 source(s) indexed (0 items), 3 unchanged" in again.output
    _forget(shop_dir, tenant)


def test_search_with_no_match_says_so_and_exits_1(shop_dir: Path, tenant: str) -> None:
    wabot("knowledge", "reindex")
    result = wabot("knowledge", "search", "bicicleta")
    assert result.exit_code == 1 and "nothing found for 'bicicleta'" in result.output
    bad = wabot("knowledge", "search", "x", "--scope", "everything")
    assert bad.exit_code == 2
    _forget(shop_dir, tenant)


def test_a_broken_pdf_is_reported_and_the_rest_indexed(shop_dir: Path, tenant: str) -> None:
    (shop_dir / "knowledge" / "roto.pdf").write_bytes(b"%PDF-1.4 nothing")
    result = wabot("knowledge", "reindex")
    assert result.exit_code == 1
    assert "error: roto.pdf: roto.pdf: not a readable PDF" in result.output
    assert "3 source(s) indexed" in result.output
    _forget(shop_dir, tenant)


def _forget(shop_dir: Path, tenant: str) -> None:
    """Remove this test's rows from the shared database."""
    from bot.knowledge.library import index_for
    from bot.stores.db import Database

    async def run() -> None:
        db = Database(os.environ["WABOT_DATABASE_URL"])
        await index_for(db).forget_tenant(tenant)
        await db.close()

    asyncio.run(run())


async def test_sighup_reindexes_what_changed_while_running(
        db_url: str, tmp_path: Path, tenant: str, openai_server: FakeOpenAI) -> None:
    folder = tmp_path / "knowledge"
    folder.mkdir()
    profile = tmp_path / "business.yaml"
    shoes = [{"name": "Zapato Rojo", "price": 100}]
    profile.write_text(yaml.safe_dump({"name": "Tienda", "products": shoes}))
    settings = make_settings(db_url, tmp_path, openai_server, tenant, business_file=profile,
                             knowledge={"dir": str(folder)})
    clock = VirtualClock(START)
    shop = App(settings, MemoryGateway(clock), clock=clock, heartbeat=False)
    await shop.start()
    stop = asyncio.Event()
    restore = install_signals(stop, shop.reindex)
    assert shop.unit.library is not None
    library = shop.unit.library
    try:
        await library.sync()
        assert await library.search("envio gratis", [DOCUMENT]) == []
        (folder / "envios.md").write_text("# Envíos\n\nEnvío gratis desde 999 MXN.\n")
        # what a catalog import writes: a new product, a new price
        shoes = [{"name": "Zapato Rojo", "price": 120}, {"name": "Bota Nueva", "price": 900}]
        profile.write_text(yaml.safe_dump({"name": "Tienda", "products": shoes}))
        os.kill(os.getpid(), signal.SIGHUP)

        # The re-index runs in the daemon's background task: poll the database for it.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not await library.search("envio gratis", [DOCUMENT]):
            assert loop.time() < deadline, "SIGHUP did not re-index the new file"
            await asyncio.sleep(0.02)
        assert not stop.is_set()
        [boot] = await library.search("botas nuevas")
        assert (boot.title, boot.facts["price"]) == ("Bota Nueva", 900)
        # the prompt's product list follows the re-indexed catalog
        assert [(p.name, p.price) for p in shop.unit.deps.business.products] == [
            ("Zapato Rojo", 120), ("Bota Nueva", 900)]
    finally:
        restore()
        await library.index.forget_tenant(tenant)
        await shop.stop()


def test_simulate_shows_media_sends_and_erases_its_copy_of_the_knowledge(
        shop_dir: Path, tenant: str, openai_server: FakeOpenAI) -> None:
    import json

    from sqlalchemy import create_engine, func, select

    from bot.knowledge.index_base import ITEMS
    from bot.stores.db import sync_url

    scenario = shop_dir / "s.jsonl"
    scenario.write_text(json.dumps({"at": 0, "op": "message", "from": "+5215512345678",
                                    "text": "¿me mandas la política?"}) + "\n"
                        + json.dumps({"at": 60, "op": "advance"}) + "\n")
    openai_server.tool_call("send_media", {"document": "devoluciones.md", "caption": "Aquí"})
    out = shop_dir / "out.jsonl"
    result = wabot("simulate", str(scenario), "--out", str(out))
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {"to": "+5215512345678", "media": "document", "text": "devoluciones.md: Aquí"} in [
        {k: r[k] for k in ("to", "media", "text") if k in r} for r in records]
    engine = create_engine(sync_url(os.environ["WABOT_DATABASE_URL"]))
    with engine.connect() as conn:
        left = conn.execute(select(func.count()).select_from(ITEMS).where(
            ITEMS.c.tenant.startswith(tenant + "-sim-"))).scalar_one()
    engine.dispose()
    assert left == 0
