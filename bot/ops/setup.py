"""`wabot init`: the two files a business runs on, written from a few answers.

`config/wabot.toml` (the lifecycle follow-up rules on, every other key documented in
config/wabot.example.toml), `config/business.yaml`, and the API key in `.env` (mode 0600),
never in the TOML file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import ValidationError

from bot.business import Business
from bot.ops.hours import HoursError, parse_hours
from bot.ops.zones import Unclear, find_zone
from bot.settings import DEFAULT_RULES


class SetupError(ValueError):
    """An answer that cannot be used; the message says what is expected, `suggestion` what
    to offer when asking again (empty: the question's default)."""

    def __init__(self, reason: str, suggestion: str = "") -> None:
        super().__init__(reason)
        self.suggestion = suggestion


@dataclass(slots=True)
class Answers:
    name: str = "My Shop"
    language: str = "English"
    timezone: str = "UTC"
    hours: str = "mon-fri 09:00-18:00, sat 10:00-14:00"
    base_url: str = ""  # empty: OpenAI
    api_key: str = ""
    model: str = "gpt-4o-mini"
    database_url: str = ""  # empty: SQLite in ./data
    tenant: str = "default"


def check_name(typed: str) -> str:
    if not typed.strip():
        raise SetupError("the business needs a name")
    return typed.strip()


def check_timezone(typed: str) -> str:
    """The IANA zone for what was typed (`Mexico City` → America/Mexico_City)."""
    found = find_zone(typed)
    if isinstance(found, Unclear):
        raise SetupError(found.reason, found.suggestion)
    return found


def check_hours(typed: str, language: str) -> str:
    """The opening hours as typed, once they read (day names in `language` or English)."""
    try:
        Business.model_validate({"name": "-", "hours": parse_hours(typed, language)})
    except HoursError as exc:
        raise SetupError(str(exc)) from None
    except ValidationError as exc:
        raise SetupError(reason(exc)) from None
    return typed


def reason(exc: ValidationError) -> str:
    """What pydantic found wrong, in its words, without the documentation link it appends."""
    return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())


def local_timezone() -> str:
    """The machine's IANA zone (TZ, /etc/timezone, /etc/localtime), else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    etc = Path("/etc/timezone")
    if etc.is_file():
        candidates.append(etc.read_text(encoding="utf-8").strip())
    link = Path("/etc/localtime")
    if link.is_symlink():
        candidates.append(str(link.resolve()).partition("zoneinfo/")[2])
    for name in candidates:
        try:
            if name:
                ZoneInfo(name)
                return name
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return "UTC"


def business_yaml(a: Answers) -> str:
    try:
        profile = {"name": check_name(a.name), "language": a.language,
                   "timezone": check_timezone(a.timezone),
                   "hours": parse_hours(a.hours, a.language), "products": [], "faq": [],
                   "notes": ""}
        Business.model_validate(profile)
    except HoursError as exc:
        raise SetupError(str(exc)) from None
    except ValidationError as exc:
        raise SetupError(reason(exc)) from None
    head = ("# The business the agents speak for (config/business.example.yaml shows every\n"
            "# field: persona, products with prices, FAQ). Agents state only what is here.\n")
    tail = ("# notes: what else the agents must know, in your words (policies, shipping,\n"
            "# returns); it goes into every conversation as it is written.\n")
    return head + yaml.safe_dump(profile, allow_unicode=True, sort_keys=False) + tail


def wabot_toml(a: Answers) -> str:
    def q(v: str) -> str:
        return json.dumps(v, ensure_ascii=False)  # a TOML basic string

    lines = ["# Written by `wabot init`. config/wabot.example.toml documents every key.",
             f"tenant = {q(a.tenant)}", 'state_dir = "data"',
             'business_file = "config/business.yaml"']
    if a.database_url:
        lines.append(f"database_url = {q(a.database_url)}")
    lines += ["", "[llm]", f"model = {q(a.model)}"]
    if a.base_url:
        lines.append(f"base_url = {q(a.base_url)}")
    lines += ["", "[followups]", "enabled = true",
              "# The lifecycle rules (the built-in defaults, written out to be changed).",
              "# when = \"silent\": after_hours after the customer's last message in `stage`;",
              "# when = \"entered\": after_hours after the customer entered `stage`."]
    for rule in DEFAULT_RULES:
        lines += ["", "[[followups.rules]]"]
        lines += [f"{k} = {q(v) if isinstance(v, str) else v}" for k, v in rule.items()]
    return "\n".join(lines) + "\n"


def check_free(root: Path, targets: list[Path] | None = None, force: bool = False) -> None:
    """Refuses to overwrite files already there: asked before the first question too."""
    targets = targets or [root / "config" / "wabot.toml", root / "config" / "business.yaml"]
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise SetupError(f"{', '.join(map(str, existing))} already exist: edit them, or run "
                         "`wabot init --force` to write them again")


def write_files(root: Path, a: Answers, force: bool = False) -> list[Path]:
    """Writes the files under `root`; refuses to overwrite unless `force`."""
    targets = {root / "config" / "wabot.toml": wabot_toml(a),
               root / "config" / "business.yaml": business_yaml(a)}
    if a.api_key:
        targets[root / ".env"] = f"OPENAI_API_KEY={a.api_key}\n"
    check_free(root, list(targets), force)
    for path, content in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        if path.name == ".env":
            path.chmod(0o600)
    (root / "data").mkdir(mode=0o700, exist_ok=True)
    return list(targets)
