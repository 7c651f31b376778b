"""`wabot init`: the two files a business runs on, written from a few answers.

`config/wabot.toml` (the lifecycle follow-up rules on, every other key documented in
config/wabot.example.toml), `config/business.yaml`, and the API key in `.env` (mode 0600),
never in the TOML file.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bot.business import DAYS, Business
from bot.settings import DEFAULT_RULES


class SetupError(ValueError):
    """An answer that cannot be used; the message says what is expected."""


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


_SPAN = re.compile(r"^\s*(closed|\d\d:\d\d-\d\d:\d\d)\s*$")


def parse_hours(text: str) -> dict[str, str]:
    """`"mon-fri 09:00-18:00, sat 10:00-14:00"` → the profile's `hours`; other days closed."""
    hours = dict.fromkeys(DAYS, "closed")
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        days, _, span = part.partition(" ")
        if not _SPAN.match(span):
            raise SetupError(f"{part!r}: write days and hours like 'mon-fri 09:00-18:00'")
        first, _, last = days.lower().partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise SetupError(f"{part!r}: days are {', '.join(DAYS)} (or a range: mon-fri)")
        for i in range(DAYS.index(first), DAYS.index(last or first) + 1):
            hours[DAYS[i]] = span.strip()
    return hours


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
    profile = {"name": a.name, "language": a.language, "timezone": a.timezone,
               "hours": parse_hours(a.hours), "products": [], "faq": [],
               "notes": "Policies, shipping, returns: anything the agents must know."}
    try:
        Business.model_validate(profile)
    except ValueError as exc:
        raise SetupError(str(exc).splitlines()[-1].strip()) from None
    head = ("# The business the agents speak for (config/business.example.yaml shows every\n"
            "# field: persona, products with prices, FAQ). Agents state only what is here.\n")
    return head + yaml.safe_dump(profile, allow_unicode=True, sort_keys=False)


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


def write_files(root: Path, a: Answers, force: bool = False) -> list[Path]:
    """Writes the files under `root`; refuses to overwrite unless `force`."""
    targets = {root / "config" / "wabot.toml": wabot_toml(a),
               root / "config" / "business.yaml": business_yaml(a)}
    if a.api_key:
        targets[root / ".env"] = f"OPENAI_API_KEY={a.api_key}\n"
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise SetupError(f"{', '.join(map(str, existing))} already exist: edit them, or run "
                         "`wabot init --force` to write them again")
    for path, content in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        if path.name == ".env":
            path.chmod(0o600)
    (root / "data").mkdir(mode=0o700, exist_ok=True)
    return list(targets)
