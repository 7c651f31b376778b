"""`wabot numbers add | list | show | remove` on a real SQLite file and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app
from bot.fleet.tables import LEASES, NUMBERS
from bot.stores.db import Database
from tests.fakes.fleet import forget_rows, hold

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path, openai_server, monkeypatch, db_url, tenant):
    for name in list(os.environ):
        if name.startswith(("WABOT_", "OPENAI_")) and not name.startswith("WABOT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    values = {"WABOT_STATE_DIR": str(tmp_path / "state"), "WABOT_DATABASE_URL": db_url,
              "WABOT_TENANT": tenant, "WABOT_LLM__BASE_URL": openai_server.base_url,
              "WABOT_LLM__API_KEY": "test"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    yield values
    asyncio.run(forget_rows(db_url, tenant))


def wabot(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def failed(result, code: int = 2) -> str:
    """The one line an error prints, after checking it exited `code` without a traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wabot: "), result.output
    return lines[0]


async def rows(db_url: str, key: str) -> tuple[list[dict], list[dict]]:
    db = Database(db_url)
    try:
        async with db.connect() as conn:
            numbers = (await conn.execute(select(NUMBERS).where(
                NUMBERS.c.key == key))).mappings().all()
            leases = (await conn.execute(select(LEASES).where(
                LEASES.c.number == key))).mappings().all()
    finally:
        await db.close()
    return [dict(r) for r in numbers], [dict(r) for r in leases]


def test_a_web_number_is_added_listed_shown_and_says_where_its_qr_is(env, tenant):
    key = f"{tenant}-north"
    added = wabot("numbers", "add", key)
    assert added.exit_code == 0, added.output
    qr = Path(env["WABOT_STATE_DIR"]) / "numbers" / key / "login-qr.png"
    assert "starts it within seconds" in added.output and f"wabot numbers show {key}" in added.output
    assert str(qr) in added.output
    listed = wabot("numbers", "list")
    assert listed.exit_code == 0
    header, *lines = listed.output.splitlines()
    assert header.split() == ["KEY", "TRANSPORT", "STATE", "OWNER", "LEASE"]
    assert [line.split() for line in lines if line.startswith(key)] == [
        [key, "web", "linking", "—", "free"]]
    shown = wabot("numbers", "show", key)
    assert shown.exit_code == 0
    assert f"number        {key}" in shown.output
    assert "owner         none yet" in shown.output
    assert f"scan the QR in {qr}" in shown.output


def test_a_cloud_number_keeps_only_the_names_of_its_secrets(env, tenant, db_url, monkeypatch):
    monkeypatch.setenv("SHOP2_TOKEN", "EAAG-the-real-token")
    key = f"{tenant}-cloud"
    added = wabot("numbers", "add", key, "--transport", "cloud", "--phone-number-id",
                  "1234567890", "--access-token-env", "SHOP2_TOKEN",
                  "--app-secret-env", "SHOP2_SECRET")
    assert added.exit_code == 0, added.output
    assert "Meta's webhook" in added.output and "/webhooks/whatsapp" in added.output
    assert "$SHOP2_SECRET is not set here" in added.output  # the token is: no note for it
    assert "SHOP2_TOKEN is not set" not in added.output
    [row], _ = asyncio.run(rows(db_url, key))
    assert row["transport"] == "cloud"
    assert row["settings"] == {"cloud": {"phone_number_id": "1234567890",
                                         "access_token_env": "SHOP2_TOKEN",
                                         "app_secret_env": "SHOP2_SECRET"}}
    shown = wabot("numbers", "show", key)
    assert "cloud.access_token_env = SHOP2_TOKEN" in shown.output
    assert "EAAG" not in shown.output
    as_json = json.loads(wabot("numbers", "show", key, "--json").output)
    assert as_json["settings"]["cloud"]["access_token_env"] == "SHOP2_TOKEN"


def test_a_secret_that_got_into_a_row_is_never_shown(env, tenant, db_url):
    key = f"{tenant}-leaky"

    async def insert() -> None:
        db = Database(db_url)
        try:
            await db.create_all()
            now = datetime.now(UTC)
            async with db.begin() as conn:
                await conn.execute(NUMBERS.insert().values(
                    key=key, transport="cloud", settings={"cloud": {"access_token": "EAAGleak"}},
                    business_file="", state="offline", state_line="", created_at=now,
                    updated_at=now))
        finally:
            await db.close()

    asyncio.run(insert())
    for args in (("show", key), ("show", key, "--json"), ("list", "--json")):
        out = wabot("numbers", *args).output
        assert "EAAGleak" not in out and "***" in out, args


@pytest.mark.parametrize(("args", "says"), [
    (("bad key",), "is not a number key"),
    (("{t}-x", "--transport", "telegram"), "use web"),
    (("{t}-x", "--phone-number-id", "123"), "use transport cloud"),
    (("{t}-x", "--transport", "cloud"), "needs the number's phone_number_id"),
    (("{t}-x", "--transport", "cloud", "--phone-number-id", "12a"), "digits only"),
    (("{t}-x", "--transport", "cloud", "--phone-number-id", "1", "--access-token-env",
      "EAAG.raw-token"), "not hold the secret itself"),
    (("{t}-x", "--business-file", "nowhere.yaml"), "does not exist"),
])
def test_input_that_cannot_be_used_is_one_line_and_exit_2(env, tenant, db_url, args, says):
    line = failed(wabot("numbers", "add", *(a.format(t=tenant) for a in args)))
    assert says in line
    assert asyncio.run(rows(db_url, f"{tenant}-x")) == ([], [])


def test_a_number_or_phone_number_id_is_added_once(env, tenant):
    key = f"{tenant}-a"
    cloud = ("--transport", "cloud", "--phone-number-id", "555")
    assert wabot("numbers", "add", key, *cloud).exit_code == 0
    assert "already exists" in failed(wabot("numbers", "add", key))
    assert "already number" in failed(wabot("numbers", "add", f"{tenant}-b", *cloud))


def test_a_business_file_is_stored_as_an_absolute_path(env, tenant, db_url, tmp_path):
    (tmp_path / "shop.yaml").write_text((ROOT / "config/business.example.yaml").read_text())
    assert wabot("numbers", "add", f"{tenant}-b", "--business-file", "shop.yaml").exit_code == 0
    [row], _ = asyncio.run(rows(db_url, f"{tenant}-b"))
    assert row["business_file"] == str(tmp_path / "shop.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    failed(wabot("numbers", "add", f"{tenant}-c", "--business-file", "broken.yaml"))


def test_list_and_show_name_the_owner_and_the_seconds_left(env, tenant, db_url):
    key, node = f"{tenant}-held", f"{tenant}-node-a"
    assert wabot("numbers", "add", key).exit_code == 0
    lease = asyncio.run(hold(db_url, key, node, ttl=30))
    line = next(x for x in wabot("numbers", "list").output.splitlines() if x.startswith(key))
    cells = line.split()
    assert cells[:4] == [key, "web", "linking", node]
    assert 25 <= int(cells[4]) <= 30 and cells[5] == "s"
    shown = wabot("numbers", "show", key).output
    assert f"owner         {node} · pid {os.getpid()} on " in shown and "holds it" in shown
    assert f"lease         epoch {lease.epoch} · " in shown
    assert f"on that node's console: http://{node}.example:8080" in shown
    item = json.loads(wabot("numbers", "show", key, "--json").output)
    assert item["owner"] == node and item["held"] is True and item["epoch"] == lease.epoch


def test_remove_asks_then_deletes_the_row_and_its_lease(env, tenant, db_url):
    key, node = f"{tenant}-gone", f"{tenant}-node-a"
    assert wabot("numbers", "add", key).exit_code == 0
    asyncio.run(hold(db_url, key, node))
    kept = wabot("numbers", "remove", key, input="n\n")
    assert kept.exit_code == 1 and f"served by {node}" in kept.output
    assert len(asyncio.run(rows(db_url, key))[0]) == 1
    removed = wabot("numbers", "remove", key, input="y\n")
    assert removed.exit_code == 0, removed.output
    assert f"node {node} stops it at its next lease renewal" in removed.output
    assert f"WABOT_TENANT={key} wabot forget" in removed.output
    assert asyncio.run(rows(db_url, key)) == ([], [])
    assert "no number" in failed(wabot("numbers", "show", key))
    assert "no number" in failed(wabot("numbers", "remove", key, "--yes"))


def test_the_configured_number_is_not_removed(env, tenant):
    assert wabot("numbers", "add", tenant).exit_code == 0
    assert "configured as tenant" in failed(wabot("numbers", "remove", tenant, "--yes"))
    assert wabot("numbers", "show", tenant).exit_code == 0


def test_an_unreachable_database_is_one_line(env, monkeypatch):
    monkeypatch.setenv("WABOT_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert "the database could not be used" in failed(wabot("numbers", "list"), 69)
