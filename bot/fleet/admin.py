"""Adding and removing numbers as the operator does, the same from `wabot numbers` and from
`/api/v1/numbers`: the input checked and every mistake said in one line (`NumberError`).

Secrets are never taken, only the names of the environment variables that hold them: the
node that serves a number reads them from its own environment when the number starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.business import BusinessError, load_business
from bot.fleet.numbers import SECRETS, NumberError, NumberExists, NumberStore, check_key
from bot.fleet.tables import NumberRow
from bot.gateway.web.qr import QR_PNG_NAME
from bot.settings import Settings

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
CLOUD_FIELDS = ("phone_number_id", "access_token_env", "app_secret_env", "verify_token_env")


class NumberNotFound(NumberError):
    """No number by that key (HTTP 404)."""


class NewNumber(BaseModel):
    """A number to add: `POST /api/v1/numbers`'s body and `wabot numbers add`'s options."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="The number's name in the fleet: 1-64 letters, digits, "
                     "'.', '_', '+' or '-'", examples=["shop-north"])
    transport: str = Field("web", description="web (WhatsApp Web: QR or pair code) or cloud "
                           "(Meta's Cloud API)")
    phone_number_id: str = Field("", description="Cloud API: the number's id in Meta's "
                                 "dashboard (WhatsApp → API Setup)")
    access_token_env: str = Field("", description="Cloud API: the environment variable that "
                                  "holds the token (default: the process's cloud.access_token)")
    app_secret_env: str = Field("", description="Cloud API: the environment variable that "
                                "holds the app secret (default: the process's)")
    verify_token_env: str = Field("", description="Cloud API: the environment variable that "
                                  "holds the webhook verify token (default: the process's)")
    business_file: str = Field("", description="A business profile (YAML) on the nodes; "
                               "empty: the process's")

    @model_validator(mode="before")
    @classmethod
    def _no_raw_secrets(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for name in SECRETS["cloud"]:
                if name in data:
                    raise ValueError(f"{name} is a secret and is never stored: give "
                                     f"{name}_env, the name of the environment variable "
                                     "that holds it")
        return data

    def settings(self) -> dict[str, Any]:
        cloud = {name: getattr(self, name) for name in CLOUD_FIELDS if getattr(self, name)}
        return {"cloud": cloud} if cloud else {}


def state_dir_of(base: Settings, key: str) -> Path:
    """Where the number's own files live on a node (as `settings_for` places them)."""
    return base.state_dir if key == base.tenant else base.state_dir / "numbers" / key


def qr_file(base: Settings, key: str) -> Path:
    return state_dir_of(base, key) / QR_PNG_NAME


def _cloud(row: NumberRow) -> dict[str, Any]:
    cloud = (row.settings or {}).get("cloud")
    return cloud if isinstance(cloud, dict) else {}


def _check_cloud(new: NewNumber, others: list[NumberRow], base: Settings) -> None:
    given = [name for name in CLOUD_FIELDS if getattr(new, name)]
    if new.transport != "cloud":
        if given:
            raise NumberError(f"{', '.join(given)}: Cloud API settings, but the transport is "
                              f"{new.transport}: use transport cloud, or leave them out")
        return
    if not new.phone_number_id:
        raise NumberError("the Cloud API needs the number's phone_number_id (Meta's dashboard:"
                          " WhatsApp → API Setup)")
    if not new.phone_number_id.isdigit():
        raise NumberError(f"phone_number_id {new.phone_number_id!r} is not an id: Meta's ids "
                          "are digits only")
    for name in CLOUD_FIELDS[1:]:
        value = getattr(new, name)
        if value and not ENV_NAME.match(value):
            raise NumberError(f"{name} must name an environment variable (letters, digits "
                              "and _, e.g. SHOP2_CLOUD_TOKEN), not hold the secret itself")
    used = {_cloud(row).get("phone_number_id"): row.key for row in others}
    if base.whatsapp.transport == "cloud" and base.tenant not in used.values():
        used[base.cloud.phone_number_id] = base.tenant
    if new.phone_number_id in used:
        raise NumberError(f"phone_number_id {new.phone_number_id} is already number "
                          f"{used[new.phone_number_id]}'s: one Cloud API number, one key")


def _business_file(path: str) -> str:
    if not path:
        return ""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise NumberError(f"business file {file} does not exist (the nodes read it from "
                          "the same path)")
    try:
        load_business(file)
    except BusinessError as exc:
        # One line: a YAML error's own text spans several (the line, a caret under it).
        mark = getattr(exc.__cause__, "problem_mark", None)
        line = str(exc).splitlines()[0] + (f" (line {mark.line + 1})" if mark else "")
        raise NumberError(line) from None
    return str(file)


async def add_number(store: NumberStore, new: NewNumber, base: Settings) -> NumberRow:
    """Check `new` and store it; the nodes start it at their next look at the leases."""
    check_key(new.key)
    if new.transport not in ("web", "cloud"):
        raise NumberError(f"transport {new.transport!r}: use web (WhatsApp Web, QR or pair "
                          "code) or cloud (Meta's Cloud API)")
    others = await store.all()
    if any(row.key == new.key for row in others):
        raise NumberExists(f"number {new.key} already exists (`wabot numbers show {new.key}`)")
    _check_cloud(new, others, base)
    business_file = _business_file(new.business_file)
    return await store.add(new.key, new.transport, new.settings(), business_file)


def notes_for(row: NumberRow, base: Settings, env: Mapping[str, str] | None) -> list[str]:
    """What the operator should know about a number just added: variables not set in `env`
    (the CLI's environment; None: not checked), secrets taken from the process's settings."""
    notes: list[str] = []
    cloud = _cloud(row)
    if row.transport != "cloud":
        return notes
    for secret in SECRETS["cloud"]:
        name = cloud.get(f"{secret}_env")
        if name and env is not None and not env.get(name):
            notes.append(f"${name} is not set here: the nodes that serve {row.key} need it "
                         "in their environment (e.g. /etc/wabot/wabot.env)")
        elif not name:
            where = "set" if getattr(base.cloud, secret) else "not set in these settings"
            notes.append(f"{secret}_env not given: the nodes use their configured "
                         f"cloud.{secret} ({where})")
    return notes


STARTS = ("Every running `wabot run` on this database starts it within seconds (one of "
           "them serves it, the others stand by). ")


def next_steps(row: NumberRow, base: Settings) -> str:
    return f"number {row.key} is added. " + STARTS.format(key=row.key) + _linking(row, base)


def _linking(row: NumberRow, base: Settings) -> str:
    if row.transport == "cloud":
        return ("Point Meta's webhook (WhatsApp → Configuration) at /webhooks/whatsapp on "
                "the nodes' consoles over HTTPS: one URL serves every Cloud API number, and a "
                "node that does not serve this one journals it for the one that does.")
    return (f"Its daemon shows the QR code to link it: `wabot numbers show {row.key}` or the "
            f"file {qr_file(base, row.key)} on the node that serves it. Scan it in WhatsApp "
            "→ Linked devices → Link a device.")


def check_removable(key: str, base: Settings) -> None:
    if key == base.tenant:
        raise NumberError(f"number {key} is the one configured as tenant in the settings: "
                          "a node registers it again at its next start. Set another tenant "
                          "(WABOT_TENANT) there first")


async def remove_number(store: NumberStore, key: str, base: Settings) -> NumberRow:
    """Delete the number and its lease; its customers' rows stay."""
    check_removable(key, base)
    row = await store.get(key)
    if row is None:
        raise NumberNotFound(f"no number {key} (`wabot numbers list` shows them)")
    await store.remove(key)
    return row
