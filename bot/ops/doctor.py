"""`wabot doctor`: check everything the daemon needs, and say how to fix what is wrong.

Each check is one line, ✓ or ✗, with a fix under every ✗. Nothing is changed: the SQLite
file is opened only when it exists, the LLM gets one tiny request (a few tokens).
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import openai
from openai import AsyncOpenAI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.business import BusinessError, load_business
from bot.gateway.cloud.gateway import CloudGateway
from bot.gateway.cloud.graph import CloudError
from bot.gateway.cloud.webhook import PATH
from bot.llm import LLMError, parse_completion
from bot.ops.preflight import api_key_problem
from bot.settings import DEFAULT_CONFIG, Settings, SettingsError, load_settings
from bot.stores.db import Database

EXAMPLE_BUSINESS = "Casa Azul Shoes"  # the name in config/business.example.yaml


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def config_source(config: Path | None) -> str:
    if config is not None:
        return str(config)
    if os.environ.get("WABOT_CONFIG"):
        return os.environ["WABOT_CONFIG"]
    return str(DEFAULT_CONFIG) if DEFAULT_CONFIG.is_file() else "defaults and environment"


def check_config(config: Path | None) -> tuple[Settings | None, Check]:
    source = config_source(config)
    try:
        settings = load_settings(config)
    except SettingsError as exc:
        problems = [line.strip().removeprefix("- ") for line in str(exc).splitlines()
                    if line.strip() and line != "invalid settings:"]
        return None, Check("configuration", False, f"invalid settings ({source})",
                           "\n".join(problems))
    return settings, Check("configuration", True, f"{source} (tenant {settings.tenant})")


def check_business(settings: Settings) -> Check:
    path = settings.business_file
    if path is None and Path("config/business.yaml").is_file():
        path = Path("config/business.yaml")
    if path is None:
        return Check("business profile", False,
                     "none configured: agents would speak for a generic shop",
                     "cp config/business.example.yaml config/business.yaml, edit it, and set "
                     "business_file (or WABOT_BUSINESS_FILE)")
    if not path.is_file():
        return Check("business profile", False, f"{path} does not exist",
                     f"cp config/business.example.yaml {path}, then edit it")
    try:
        business = load_business(path)
    except BusinessError as exc:
        first = str(exc).splitlines()[0].removeprefix("business profile ")
        where = re.findall(r"line \d+, column \d+", str(exc))
        detail = f"{first} ({where[-1]})" if where else first
        return Check("business profile", False, detail,
                     f"edit {path} (config/business.example.yaml shows every field)")
    if business.name == EXAMPLE_BUSINESS:  # config/business.example.yaml, copied as it is
        return Check("business profile", False,
                     f"{path} is the example profile ({EXAMPLE_BUSINESS}, a shoe shop): the "
                     "agents would sell its shoes",
                     f"run `wabot init` (or edit {path}) with your business, then point "
                     "business_file at it")
    return Check("business profile", True,
                 f"{business.name} ({path}, {len(business.products)} products, "
                 f"{len(business.faq)} FAQ)")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def check_state_dir(settings: Settings) -> Check:
    d = settings.state_dir
    if not d.exists():
        return Check("state directory", False, f"{d} does not exist",
                     f"run `wabot login` (it creates it), or: mkdir -m 700 {d}")
    if not d.is_dir():
        return Check("state directory", False, f"{d} is not a directory",
                     "point state_dir (WABOT_STATE_DIR) at a directory")
    if not os.access(d, os.W_OK | os.X_OK):
        return Check("state directory", False, f"{d} is not writable by this user",
                     f"chown the directory to the user wabot runs as, or: chmod u+rwx {d}")
    mode = _mode(d)
    if mode & 0o007:
        return Check("state directory", False,
                     f"{d} is open to other users (mode {mode:04o}); it holds the login keys",
                     f"chmod 700 {d}")
    return Check("state directory", True, f"{d.resolve()} (mode {mode:04o}, writable)")


def check_session(settings: Settings) -> Check:
    from bot.gateway.web.devices.choice import device_store_for
    from bot.gateway.web.devices.file import FileStore

    try:
        store = device_store_for(settings)
    except ValueError as exc:
        return Check("WhatsApp session", False, str(exc))
    if not isinstance(store, FileStore):
        return Check("WhatsApp session", True, f"kept in {store.where} (table number_devices, "
                     "not inspected), so it follows the number to any node of the fleet; "
                     "`wabot run` or `wabot login` shows the QR code while none is linked")
    path = store.path
    if not path.is_file() or path.stat().st_size == 0:
        # Not a fault on a new install: the first `wabot run` shows the QR code.
        return Check("WhatsApp session", True, f"not linked yet ({path}): `wabot run` or "
                     "`wabot login` shows the QR code to scan (WhatsApp → Linked devices)")
    mode = _mode(path)
    if mode & 0o077:
        return Check("WhatsApp session", False,
                     f"{path} is readable by others (mode {mode:04o}): it logs in as you",
                     f"chmod 600 {path}")
    moves = (": on this machine only, though the database is PostgreSQL (unlink the device "
             "on the phone and link again to keep it in the database)" if store.kept else "")
    return Check("WhatsApp session", True, f"{path} (mode {mode:04o}){moves}")


def _short(exc: BaseException) -> str:
    message = str(exc).split(", Timeout:")[0].split(" (configured timeouts")[0]
    return f"{type(exc).__name__}: {message}"[:300] if message else type(exc).__name__


def _sqlite_not_yet(url: str) -> Check | None:
    """A SQLite file that does not exist yet is fine if it can be created (not opened:
    opening would create it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    path = Path(parsed.database or "")
    if path.is_file():
        return None
    if path.parent.is_dir() and os.access(path.parent, os.W_OK):
        return Check("SQL database", True, f"SQLite {path} is created on first start")
    return Check("SQL database", False, f"SQLite {path} cannot be created",
                 f"create {path.parent} writable by the user wabot runs as")


async def check_database(settings: Settings, limit_s: float) -> Check:
    shown = make_url(settings.sql_url).render_as_string(hide_password=True)
    if (early := _sqlite_not_yet(settings.sql_url)) is not None:
        return early
    db = Database(settings.sql_url)
    try:
        async with asyncio.timeout(limit_s), db.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return Check("SQL database", False, f"{shown}: {_short(exc)}",
                     "check database_url (WABOT_DATABASE_URL) and that the server runs "
                     "and accepts this user (pg_isready -h <host>)")
    finally:
        await db.close()
    return Check("SQL database", True, f"{shown} answers")


def _ping_mongodb(url: str, limit_s: float) -> None:
    # The synchronous client, in a thread: PyMongo's AsyncMongoClient (4.20) leaves a socket
    # open when the server refuses the connection, and the doctor must not leak.
    from pymongo import MongoClient

    ms = int(limit_s * 1000)
    client: MongoClient[dict[str, object]] = MongoClient(
        url, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms)
    try:
        client.admin.command("ping")
    finally:
        client.close()


async def check_mongodb(settings: Settings, limit_s: float) -> Check:
    if settings.mongodb_url is None:
        return Check("MongoDB", True, "not configured: agent memory lives in the SQL database")
    url = settings.mongodb_url.get_secret_value()
    shown = re.sub(r"//[^@/]*@", "//***@", url)
    try:
        await asyncio.to_thread(_ping_mongodb, url, limit_s)
    except Exception as exc:
        return Check("MongoDB", False, f"{shown}: {_short(exc)}",
                     "check mongodb_url (WABOT_MONGODB_URL) and that mongod runs; or unset "
                     "it to keep agent memory in the SQL database")
    return Check("MongoDB", True, f"{shown} answers ping")


async def check_llm(settings: Settings, limit_s: float) -> Check:
    s = settings.llm
    where = s.base_url or "https://api.openai.com/v1"
    key = s.api_key.get_secret_value() if s.api_key else None
    if (missing := api_key_problem(s)) is not None:
        return Check("LLM endpoint", False, missing.what, missing.fix)
    client = AsyncOpenAI(api_key=key or "not-needed", base_url=s.base_url, timeout=limit_s,
                         max_retries=0)
    listed: list[str] | None = None
    try:
        try:
            listed = [m.id async for m in client.models.list()]
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403):
                return Check("LLM endpoint", False, f"{where} refused the API key "
                             f"(HTTP {exc.status_code})", "set OPENAI_API_KEY / llm.api_key")
        except openai.APIError as exc:  # connection refused, timeout
            return Check("LLM endpoint", False,
                         f"{where} unreachable: {_short(exc.__cause__ or exc)}",
                         "check llm.base_url (WABOT_LLM__BASE_URL) and that the server runs")
        except Exception:  # HTML from a proxy, truncated JSON: try the chat request anyway
            listed = None
        started = time.monotonic()
        try:
            done = await client.chat.completions.create(
                model=s.model, messages=[{"role": "user", "content": "Reply with: OK"}],
                max_tokens=16, temperature=s.temperature)
        except openai.APIStatusError as exc:
            choices = f": one of {', '.join(listed[:8])}" if listed else ""
            return Check("LLM endpoint", False,
                         f"{where} answered HTTP {exc.status_code} for model {s.model}",
                         f"set llm.model (WABOT_LLM__MODEL) to a model this endpoint serves"
                         f"{choices}")
        except openai.APIError as exc:
            return Check("LLM endpoint", False, f"{where}: {_short(exc)}",
                         "check llm.base_url and llm.timeout")
        except Exception as exc:  # a body that is not JSON at all
            return _not_openai(where, exc)
        try:
            completion = parse_completion(done)
        except LLMError as exc:
            return _not_openai(where, exc)
    finally:
        await client.close()
    took = time.monotonic() - started
    if not completion.text.strip():
        # Turns would fail, and the probe that ends an outage's wait would never pass.
        why = ("only tool calls" if completion.tool_calls else
               "cut off at 16 tokens" if done.choices and done.choices[0].finish_reason == "length"
               else "an empty answer")
        return Check("LLM endpoint", False,
                     f"{where} answered {s.model} with no text ({why})",
                     "use a model and endpoint that answer in text: replies need words, and "
                     "after an outage the daemon waits for a one-word answer before retrying")
    used = completion.tokens_in + completion.tokens_out
    note = "" if listed is None or s.model in listed else ", not listed by /models"
    return Check("LLM endpoint", True,
                 f"{where} answered with {s.model} ({used} tokens, {took:.1f} s{note})")


# --- the Cloud API transport ----------------------------------------------------------------

def webhook_url(settings: Settings) -> str:
    base = settings.cloud.public_url.rstrip("/")
    return f"{base}{PATH}" if base else ""


def cloud_checks(settings: Settings) -> list[Check]:
    c = settings.cloud
    url = webhook_url(settings)
    h = settings.http  # the console's server serves the webhook; without it, the transport's
    listen = f"{h.host}:{h.port}" if h.enabled else f"{c.listen_host}:{c.listen_port}"
    if not url:
        return [Check("Cloud API webhook", False,
                      f"no public address: Meta cannot reach the webhook (listening on {listen})",
                      "set cloud.public_url (WABOT_CLOUD__PUBLIC_URL) to the HTTPS address "
                      f"your reverse proxy forwards to {listen}; then register "
                      f"<public_url>{PATH} in the Meta app → WhatsApp → Configuration")]
    fix = "" if url.startswith("https://") else "Meta only calls https:// webhooks"
    return [Check("Cloud API webhook", url.startswith("https://"),
                  f"register {url} in the Meta app → WhatsApp → Configuration, with the "
                  f"verify token from cloud.verify_token, and subscribe to the messages "
                  f"field (listening on {listen})", fix)]


async def check_cloud_token(settings: Settings, limit_s: float) -> Check:
    c = settings.cloud
    where = f"{c.graph_url}/{c.phone_number_id}"
    quick = c.model_copy(update={"max_retries": 0, "timeout": limit_s})
    gateway = CloudGateway(settings.tenant, quick)
    try:
        number = await gateway.phone_number()
    except CloudError as exc:
        if exc.status in (401, 403) or exc.code == 190:
            return Check("Cloud API token", False, f"{where} refused the access token: {exc}",
                         "create a permanent system-user token with whatsapp_business_messaging"
                         " and set cloud.access_token (WABOT_CLOUD__ACCESS_TOKEN)")
        if exc.status:
            return Check("Cloud API token", False, f"{where}: {exc}",
                         "check cloud.phone_number_id: the id shown under WhatsApp → API "
                         "Setup, not the phone number")
        return Check("Cloud API token", False, f"{where} unreachable: {exc}",
                     "check cloud.graph_url and this host's outbound HTTPS")
    finally:
        await gateway.stop()
    shown = number.get("display_phone_number") or c.phone_number_id
    return Check("Cloud API token", True,
                 f"accepted for {shown} ({number.get('verified_name') or 'no verified name'})")


# --- end of the Cloud API transport ---------------------------------------------------------


def _not_openai(where: str, exc: Exception) -> Check:
    return Check("LLM endpoint", False,
                 f"{where} answered with something that is not an OpenAI-compatible chat "
                 f"completion ({exc if isinstance(exc, LLMError) else type(exc).__name__})",
                 "check llm.base_url: it must be the API's /v1 address, not a web page")


async def diagnose(settings: Settings, limit_s: float = 10.0) -> list[Check]:
    cloud = settings.whatsapp.transport == "cloud"
    checks = [check_business(settings), check_state_dir(settings)]
    checks += cloud_checks(settings) if cloud else [check_session(settings)]
    checks += await asyncio.gather(check_database(settings, limit_s),
                                   check_mongodb(settings, limit_s),
                                   check_llm(settings, limit_s))
    if cloud:
        checks.append(await check_cloud_token(settings, limit_s))
    from bot.web.console_check import check_console

    checks.append(Check("console", *await check_console(settings, min(limit_s, 3.0))))
    return checks


def report(checks: list[Check]) -> str:
    lines = ["wabot doctor"]
    for c in checks:
        lines.append(f"{'✓' if c.ok else '✗'} {c.name}: {c.detail}")
        if not c.ok and c.fix:
            first, *more = c.fix.splitlines()
            lines.append(f"    fix: {first}")
            lines.extend(f"         {line}" for line in more)
    bad = sum(not c.ok for c in checks)
    lines.append("all good" if not bad else f"{bad} problem{'s' if bad > 1 else ''} found")
    return "\n".join(lines)
