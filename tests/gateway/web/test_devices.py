"""Where a number's linked device lives: the session file, or PostgreSQL shared by the fleet.

The stand-in Go layer records what each client was opened with (`StandInClient.opening`);
the whatsmeow tables the database store reads and deletes from are made here with the
shape whatsmeow gives them (store/sqlstore/upgrades/00-latest-schema.sql): the device row,
a table that cascades from it, and the privacy tokens, which do not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from neonize.aioze.events import ConnectedEv, LoggedOutEv, PairStatusEv
from neonize.proto.Neonize_pb2 import LOGGED_OUT, PairStatus

from bot.gateway.web.devices.choice import device_store_for
from bot.gateway.web.devices.database import DatabaseStore, pq_url, shown
from bot.gateway.web.devices.file import FileStore
from bot.gateway.web.gateway import GatewayExit, NeonizeGateway
from bot.gateway.web.goclient import device_jid
from bot.settings import Settings, SettingsError, load_settings, session_store_problem
from tests.gateway.web.builders import BUSINESS, StandInFactory, jid

DEVICE = f"{BUSINESS}:7@s.whatsapp.net"  # whatsmeow_device.jid of a linked device


# --- the URL lib/pq is given ---------------------------------------------------------------


def test_pq_url_drops_the_driver_keeps_the_password_and_the_ssl_mode() -> None:
    url = "postgresql+asyncpg://wabot:p%40ss%2Fw:rd@db.example.com:6543/shop?sslmode=verify-full"

    assert pq_url(url) == ("postgres://wabot:p%40ss%2Fw%3Ard@db.example.com:6543/shop"
                           "?sslmode=verify-full")


def test_pq_url_prefers_tls_when_the_url_says_nothing_and_maps_asyncpg_ssl() -> None:
    # lib/pq alone would require TLS and fail on a server without it (asyncpg prefers).
    assert pq_url("postgresql://u@h/db") == "postgres://u@h/db?sslmode=prefer"
    assert pq_url("postgres://u@h/db?ssl=require") == "postgres://u@h/db?sslmode=require"


def test_pq_url_drops_keys_lib_pq_would_send_the_server_as_settings() -> None:
    url = "postgresql://u@h/db?prepared_statement_cache_size=0&application_name=wabot"

    assert pq_url(url) == "postgres://u@h/db?application_name=wabot&sslmode=prefer"


def test_the_password_is_hidden_where_the_store_is_shown_and_scrubbed_from_errors() -> None:
    store = DatabaseStore("postgresql://wabot:s3cr%40t@db/shop", "tienda")

    assert "s3cr" not in store.where and shown("postgres://a:b@h/d") == "postgresql://a:***@h/d"
    assert store.scrub("pq: bad URL postgres://wabot:s3cr%40t@db and s3cr@t") == (
        "pq: bad URL postgres://wabot:***@db and ***")


def test_a_whatsmeow_device_jid_becomes_the_neonize_jid_connect_sends() -> None:
    jid = device_jid("5215598765432.1:7@s.whatsapp.net")

    assert (jid.User, jid.RawAgent, jid.Device, jid.Server) == (
        "5215598765432", 1, 7, "s.whatsapp.net")


# --- which store, and misconfiguration -----------------------------------------------------


def settings(tmp_path: Path, db: str, store: str = "auto") -> Settings:
    return Settings(tenant="tienda", state_dir=tmp_path, database_url=db,
                    whatsapp={"session_store": store})


def test_sqlite_keeps_the_file_whatever_auto_finds(tmp_path: Path) -> None:
    store = device_store_for(settings(tmp_path, f"sqlite:///{tmp_path}/w.db"))

    assert isinstance(store, FileStore)
    assert store.path == tmp_path / "whatsapp-session.sqlite3"


def test_postgres_keeps_a_new_numbers_device_in_the_database(tmp_path: Path) -> None:
    assert isinstance(device_store_for(settings(tmp_path, "postgresql://u@h/db")), DatabaseStore)
    assert isinstance(device_store_for(settings(tmp_path, "postgresql://u@h/db", "file")),
                      FileStore)


async def test_postgres_keeps_a_logged_in_session_file_and_says_once_how_to_move_it(
    tmp_path: Path, log_records: list[dict[str, Any]],
) -> None:
    (tmp_path / "whatsapp-session.sqlite3").write_bytes(b"SQLite format 3\x00 keys")

    store = device_store_for(settings(tmp_path, "postgresql://wabot:s3cret@h/db"))
    assert isinstance(store, FileStore)
    opened = [await store.open(), await store.open()]

    assert all(o.linked and o.jid is None and not o.new_device for o in opened)
    [warning] = [r["message"] for r in log_records if r["level"].name == "WARNING"]
    assert "cannot move with the number to another node" in warning
    assert "Log out" in warning and "s3cret" not in warning


def test_database_store_on_sqlite_fails_at_startup_saying_what_to_fix(tmp_path: Path) -> None:
    bad = settings(tmp_path, f"sqlite:///{tmp_path}/w.db", "database")
    problem = session_store_problem(bad)

    assert problem is not None and "WABOT_DATABASE_URL" in problem
    with pytest.raises(SettingsError, match="session_store"):
        load_settings(None, tenant="tienda", state_dir=tmp_path,
                      database_url=f"sqlite:///{tmp_path}/w.db",
                      whatsapp={"session_store": "database"})
    with pytest.raises(ValueError, match="session_store"):
        device_store_for(bad)


# --- the database store with the stand-in Go layer (PostgreSQL) ----------------------------


def sql(url: str, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        cur = conn.cursor()
        cur.execute(statement, args)
        return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def whatsmeow_tables(url: str, *devices: str) -> None:
    sql(url, """
        CREATE TABLE whatsmeow_device (jid TEXT PRIMARY KEY);
        CREATE TABLE whatsmeow_sessions (
            our_jid TEXT, their_id TEXT, PRIMARY KEY (our_jid, their_id),
            FOREIGN KEY (our_jid) REFERENCES whatsmeow_device(jid) ON DELETE CASCADE);
        CREATE TABLE whatsmeow_privacy_tokens (
            our_jid TEXT, their_jid TEXT, PRIMARY KEY (our_jid, their_jid))""")
    for device in devices:
        sql(url, "INSERT INTO whatsmeow_device VALUES (%s)", device)
        sql(url, "INSERT INTO whatsmeow_sessions VALUES (%s, 'x')", device)
        sql(url, "INSERT INTO whatsmeow_privacy_tokens VALUES (%s, 'y')", device)


def remember(url: str, number: str, jid: str) -> None:
    sql(url, "CREATE TABLE IF NOT EXISTS number_devices (number VARCHAR(64) PRIMARY KEY, "
             "jid VARCHAR(128) NOT NULL, linked_at TIMESTAMPTZ NOT NULL)")
    sql(url, "INSERT INTO number_devices VALUES (%s, %s, now())", number, jid)


def recorded(url: str) -> dict[str, str]:
    return dict(sql(url, "SELECT number, jid FROM number_devices"))  # type: ignore[arg-type]


async def test_a_new_number_pairs_a_new_device_and_its_jid_is_recorded_once_connected(
    make_gateway: Callable[..., NeonizeGateway], factory: StandInFactory, devices_db_url: str,
) -> None:
    gateway = make_gateway(devices=DatabaseStore(devices_db_url, "tienda"))
    await gateway.start()
    client = await factory.next_client()

    assert client.session == pq_url(devices_db_url)
    assert client.session.startswith("postgres://") and "sslmode=prefer" in client.session
    assert client.opening.new_device and client.opening.jid is None
    assert recorded(devices_db_url) == {}

    client.me_device = 7
    await client.fire(ConnectedEv, ConnectedEv(status=True))

    assert recorded(devices_db_url) == {"tienda": DEVICE}


async def test_a_new_device_is_recorded_as_soon_as_it_is_paired(
    make_gateway: Callable[..., NeonizeGateway], factory: StandInFactory, devices_db_url: str,
) -> None:
    gateway = make_gateway(devices=DatabaseStore(devices_db_url, "tienda"))
    await gateway.start()
    client = await factory.next_client()

    await client.fire(PairStatusEv, PairStatusEv(
        ID=jid(BUSINESS, device=7), Status=PairStatus.SUCCESS, Platform="smba"))

    assert recorded(devices_db_url) == {"tienda": DEVICE}


async def test_a_linked_number_resumes_its_own_device(
    make_gateway: Callable[..., NeonizeGateway], factory: StandInFactory, devices_db_url: str,
) -> None:
    whatsmeow_tables(devices_db_url, "5215500000001:3@s.whatsapp.net", DEVICE)
    remember(devices_db_url, "tienda", DEVICE)
    gateway = make_gateway(devices=DatabaseStore(devices_db_url, "tienda"))
    await gateway.start()
    client = await factory.next_client()

    assert client.opening.jid == DEVICE and not client.opening.new_device
    assert client.opening.linked


async def test_a_recorded_device_whatsmeow_no_longer_has_is_never_handed_to_go(
    make_gateway: Callable[..., NeonizeGateway], factory: StandInFactory, devices_db_url: str,
) -> None:
    # goneonize's GetDevice answers nil for it, and whatsmeow.NewClient(nil) panics.
    whatsmeow_tables(devices_db_url)
    remember(devices_db_url, "tienda", DEVICE)
    gateway = make_gateway(devices=DatabaseStore(devices_db_url, "tienda"))
    await gateway.start()
    client = await factory.next_client()

    assert client.opening.jid is None and client.opening.new_device
    assert recorded(devices_db_url) == {}


async def test_logout_forgets_the_device_and_deletes_its_rows_only(
    make_gateway: Callable[..., NeonizeGateway], factory: StandInFactory, devices_db_url: str,
) -> None:
    other = "5215500000001:3@s.whatsapp.net"
    whatsmeow_tables(devices_db_url, other, DEVICE)
    remember(devices_db_url, "tienda", DEVICE)
    remember(devices_db_url, "otra", other)
    gateway = make_gateway(devices=DatabaseStore(devices_db_url, "tienda"))
    await gateway.start()
    client = await factory.next_client()
    client.me_device = 7
    await client.fire(ConnectedEv, ConnectedEv(status=True))

    await client.fire(LoggedOutEv, LoggedOutEv(OnConnect=False, Reason=LOGGED_OUT))

    assert await asyncio.wait_for(gateway.finished, 5) is GatewayExit.LOGGED_OUT
    assert recorded(devices_db_url) == {"otra": other}
    for table in ("whatsmeow_device", "whatsmeow_sessions", "whatsmeow_privacy_tokens"):
        column = "jid" if table == "whatsmeow_device" else "our_jid"
        assert sql(devices_db_url, f"SELECT {column} FROM {table}") == [(other,)]


async def test_two_numbers_in_one_process_open_two_devices_of_one_store(
    make_gateway: Callable[..., NeonizeGateway], factory: StandInFactory, devices_db_url: str,
) -> None:
    numbers = {"tienda": ("5215598765432", 7), "otra": ("5215500000001", 3)}
    for count, (number, (user, device)) in enumerate(numbers.items(), start=1):
        gateway = make_gateway(tenant=number, devices=DatabaseStore(devices_db_url, number))
        await gateway.start()
        client = await factory.next_client(count)
        assert client.opening.new_device  # never GetFirstDevice: another number's session
        client.me_user, client.me_device = user, device
        await client.fire(ConnectedEv, ConnectedEv(status=True))
        await gateway.stop()
    whatsmeow_tables(devices_db_url, *recorded(devices_db_url).values())

    reopened = [await DatabaseStore(devices_db_url, n).open() for n in numbers]

    assert [o.jid for o in reopened] == [f"{u}:{d}@s.whatsapp.net" for u, d in numbers.values()]
    assert all(o.name == pq_url(devices_db_url) and not o.new_device for o in reopened)


async def test_the_database_password_reaches_no_log_and_no_status_line(
    make_gateway: Callable[..., NeonizeGateway], factory: StandInFactory, devices_db_url: str,
    statuses: list[str], log_records: list[dict[str, Any]],
) -> None:
    # Trust authentication accepts any password: the store works, and we look for it.
    url = devices_db_url.replace("postgres@", "postgres:Very-S3cret@")
    factory.configure = lambda client: client.failures.update(
        connect=RuntimeError(f"pq: cannot open {pq_url(url)}"))
    gateway = make_gateway(devices=DatabaseStore(url, "tienda"))
    await gateway.start()
    async with asyncio.timeout(5):  # the failed connect is logged, then the backoff waits
        while not any("connecting to WhatsApp failed" in r["message"] for r in log_records):
            await asyncio.sleep(0)

    assert "Very-S3cret" in factory.clients[0].session  # Go needs it
    assert not any("Very-S3cret" in r["message"] for r in log_records)
    assert not any("Very-S3cret" in line for line in statuses)
    assert any("postgres://postgres:***@" in r["message"] for r in log_records)


# --- the real Go layer (neonize 0.5.2, lib/pq) against PostgreSQL ---------------------------


async def test_the_real_go_layer_opens_the_store_in_postgresql_before_it_dials(
    devices_db_url: str,
) -> None:
    """goneonize's Neonize() opens the container first (getDB → sqlstore.New, which creates
    whatsmeow's tables), then dials WhatsApp. The dial goes to a SOCKS proxy nobody listens
    on, so it fails on loopback (never the internet) and Neonize() returns the error."""
    from neonize.aioze.client import ProxySettings
    from neonize.exc import NeonizeError

    from bot.gateway.web.goclient import new_neonize_client
    from tests.gateway.web.conftest import free_port

    store = DatabaseStore(devices_db_url, "tienda")
    opening = await store.open()
    assert opening.new_device and opening.name.startswith("postgres://")
    client: Any = new_neonize_client(opening, "wabot-test-postgres-store")
    proxy = ProxySettings(proxy_address=f"socks5://127.0.0.1:{free_port()}")
    task = await client.connect(proxy)
    try:
        with pytest.raises(NeonizeError, match="dial"):
            await asyncio.wait_for(asyncio.shield(task), 30)
    finally:
        await asyncio.wait_for(client.stop(), 10)
        await store.close()

    tables = {t for (t,) in sql(devices_db_url, "SELECT tablename FROM pg_tables")}
    assert {"whatsmeow_device", "whatsmeow_sessions", "whatsmeow_privacy_tokens",
            "whatsmeow_version", "number_devices"} <= tables
    assert sql(devices_db_url, "SELECT count(*) FROM whatsmeow_device") == [(0,)]  # not paired


async def test_login_with_a_device_in_the_database_connects_nothing(
    devices_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.ops import daemon
    from bot.ops.sdnotify import Notifier

    whatsmeow_tables(devices_db_url, DEVICE)
    remember(devices_db_url, "tienda", DEVICE)
    built: list[object] = []
    monkeypatch.setattr(daemon, "neonize_gateway", lambda *a: built.append(a))

    code = await daemon.login(settings(tmp_path, devices_db_url), Notifier(None))

    assert code == daemon.EXIT_OK and built == []
    out = capsys.readouterr().out
    assert "Already linked" in out and "in the database postgresql://postgres@" in out
