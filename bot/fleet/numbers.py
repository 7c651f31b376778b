"""The numbers a deployment serves, as rows (`numbers`), and the settings each one runs with.

The number configured the single-number way (`tenant`, `whatsapp`, `cloud` in wabot.toml)
is registered as a row at the first start and keeps working unchanged. Others are added with
`wabot numbers add` or `POST /api/v1/numbers`. A row holds only what differs from the
process's settings; a secret is never stored, only the environment variable holding it
(`"access_token_env": "SHOP2_CLOUD_TOKEN"`), read when the number starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from bot.clock import Clock
from bot.fleet.tables import LEASES, NUMBER_KEY, NUMBERS, NumberRow
from bot.settings import CLOUD_REQUIRED, Settings, session_store_problem
from bot.stores.db import Database

STATES = ("linking", "connected", "offline", "restricted", "banned", "logged_out", "stopped")
SECRETS = {"cloud": ("access_token", "app_secret", "verify_token")}
ENV_SUFFIX = "_env"


class NumberError(ValueError):
    """A number that cannot be added or started as given; the message says what to fix."""


class NumberExists(NumberError):
    """The key is taken, by an earlier add or by another shell or node adding it at the
    same moment (HTTP 409)."""


def check_key(key: str) -> str:
    if not re.fullmatch(NUMBER_KEY, key):
        raise NumberError(f"{key!r} is not a number key: use 1-64 letters, digits, "
                          "'.', '_', '+' or '-' (e.g. shop-north)")
    return key


def settings_for(base: Settings, row: NumberRow, env: Mapping[str, str]) -> Settings:
    """The settings number `row` runs with: the process's, its overrides, its secrets from
    `env`, its own state folder (the WhatsApp session, its files) and the shared database."""
    data = base.model_dump()
    for section, values in (row.settings or {}).items():
        if not isinstance(values, dict):
            data[section] = values
            continue
        merged = dict(data.get(section) or {})
        for name, value in values.items():
            if name.endswith(ENV_SUFFIX) and name[:-len(ENV_SUFFIX)] in SECRETS.get(section, ()):
                secret = env.get(str(value), "")
                if not secret:
                    raise NumberError(f"number {row.key}: {section}.{name[:-len(ENV_SUFFIX)]} "
                                      f"is read from ${value}, which is not set")
                merged[name[:-len(ENV_SUFFIX)]] = SecretStr(secret)
            else:
                merged[name] = value
        data[section] = merged
    home = row.key == base.tenant
    data.update(tenant=row.key, database_url=base.sql_url,
                state_dir=base.state_dir if home else base.state_dir / "numbers" / row.key)
    data.setdefault("whatsapp", {})["transport"] = row.transport
    if row.business_file:
        data["business_file"] = Path(row.business_file)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise NumberError(f"number {row.key}: its settings are not valid: "
                          f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    if problem := session_store_problem(settings):
        raise NumberError(f"number {row.key}: {problem}")
    if settings.whatsapp.transport == "cloud":
        missing = [n for n in CLOUD_REQUIRED if not getattr(settings.cloud, n)]
        if missing:
            raise NumberError(f"number {row.key}: the Cloud API needs " + ", ".join(
                f"cloud.{n}" for n in missing))
    return settings


class NumberStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def all(self) -> list[NumberRow]:
        async with self.db.connect() as conn:
            rows = (await conn.execute(select(NUMBERS).order_by(NUMBERS.c.key))).mappings()
            return [NumberRow.model_validate(dict(r)) for r in rows]

    async def get(self, key: str) -> NumberRow | None:
        async with self.db.connect() as conn:
            row = (await conn.execute(
                select(NUMBERS).where(NUMBERS.c.key == key))).mappings().first()
        return NumberRow.model_validate(dict(row)) if row else None

    async def add(self, key: str, transport: str = "web", settings: dict[str, Any] | None = None,
                  business_file: str = "") -> NumberRow:
        check_key(key)
        if transport not in ("web", "cloud"):
            raise NumberError(f"transport {transport!r}: use web (WhatsApp Web, QR or pair "
                              "code) or cloud (Meta's Cloud API)")
        for section, values in (settings or {}).items():
            for name in SECRETS.get(section, ()):
                if isinstance(values, dict) and name in values:
                    raise NumberError(f"{section}.{name} is a secret: give the name of the "
                                      f"environment variable that holds it ({name}_env)")
        if await self.get(key) is not None:
            raise NumberExists(f"number {key} already exists")
        now = self.clock.now()
        row = NumberRow(key=key, transport=transport, settings=settings or {},
                        business_file=business_file, created_at=now, updated_at=now)
        try:
            async with self.db.begin() as conn:
                await conn.execute(NUMBERS.insert().values(**row.model_dump()))
        except IntegrityError:  # added meanwhile, by another node starting at the same time
            raise NumberExists(f"number {key} already exists") from None
        return row

    async def register(self, base: Settings) -> bool:
        """The number configured the single-number way, as a row (once); True if added."""
        if await self.get(base.tenant) is not None:
            return False
        # Its transport's settings stay in the configuration: the row holds nothing.
        try:
            await self.add(base.tenant, base.whatsapp.transport)
        except NumberExists:  # every node of a new fleet registers it at its first start
            return False
        return True

    async def set_state(self, key: str, state: str, line: str = "") -> None:
        async with self.db.begin() as conn:
            await conn.execute(update(NUMBERS).where(NUMBERS.c.key == key).values(
                state=state, state_line=line[:300], updated_at=self.clock.now()))

    async def remove(self, key: str) -> bool:
        async with self.db.begin() as conn:
            gone = (await conn.execute(delete(NUMBERS).where(NUMBERS.c.key == key))).rowcount
            await conn.execute(delete(LEASES).where(LEASES.c.number == key))
        return bool(gone)
