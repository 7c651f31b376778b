"""The generated parts of the guides: the settings reference and the API reference.

    python -m tests.docs.generate          # rewrite them
    python -m tests.docs.generate --check  # exit 1 when a page is not what the code says

The settings reference is built from the model in `bot/settings.py` (every key, its type,
default and environment variable; the description is the field's `description=` or, failing
that, the comment on its line). The API reference is built from the OpenAPI document the
daemon serves at `/openapi.json` (`bot.web.server.build_app`, the function `wabot run` uses).
`tests/docs/test_generated.py` fails when either page is stale.
"""

from __future__ import annotations

import io
import json
import re
import sys
import tokenize
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
API_REFERENCE = DOCS / "api-reference.md"
BEGIN = "<!-- BEGIN GENERATED: python -m tests.docs.generate (do not edit by hand) -->"
END = "<!-- END GENERATED -->"


# ── settings ───────────────────────────────────────────────────────────────────────────────
def line_comments() -> dict[tuple[str, str], str]:
    """(class name, field name) → the `# comment` written on the field's line."""
    source = (ROOT / "bot" / "settings.py").read_text(encoding="utf-8")
    found: dict[tuple[str, str], str] = {}
    cls, field, depth = "", "", 0
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 0 and tok.string == "class":
            cls = ""
        elif tok.type == tokenize.NAME and not cls and tok.start[1] == 6:
            cls = tok.string
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        if tok.type == tokenize.NAME and tok.start[1] == 4 and depth == 0:
            field = tok.string
        if tok.type == tokenize.COMMENT and tok.start[1] > 0 and field and cls:
            line = source.splitlines()[tok.start[0] - 1]
            if line.strip().startswith("#"):
                continue  # a comment of its own line explains the code, not one field
            found.setdefault((cls, field), tok.string.lstrip("# ").strip())
    return found


KEY_LINE = re.compile(r"^#?\s*([a-z_]+)\s*=\s*(.*?)\s*(?:#\s*(.*))?$")
SECTION_LINE = re.compile(r"^#?\s*\[\[?([a-z_.]+)\]")


def example_comments() -> dict[str, str]:
    """Dotted key → what `config/wabot.example.toml` says of it (its line's comment, or the
    comment lines just above it). Commented-out keys count: they are the example's options."""
    found: dict[str, str] = {}
    section, above = "", []
    for raw in (ROOT / "config" / "wabot.example.toml").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if m := SECTION_LINE.match(line):
            section, above = m.group(1) + ".", []
            continue
        m = KEY_LINE.match(line)
        if m and '"' not in m.group(1):
            key = section + m.group(1)
            text = m.group(3) or " ".join(above)
            if text and key not in found:
                found[key] = text
            above = []
        elif line.startswith("#") and not raw.startswith(" "):
            above.append(line.lstrip("# ").strip())
        elif not line:
            above = []
    return found


# What the settings model and the example file leave unsaid. Every key here must be a
# setting (tests/docs/test_generated.py): a renamed one fails instead of going stale.
NOTES = {
    "mongodb_database": "the MongoDB database agent memory lives in",
    "log_level": "wabot's own lines at this level and above (`-v`: DEBUG)",
    "log_json": "log JSON lines (also `--log-json`)",
    "stop_grace_seconds": "on SIGTERM, turns in flight get this long to finish",
    "llm.model": "the chat model, by its name at the endpoint",
    "llm.api_key": "the endpoint's key; else `OPENAI_API_KEY`",
    "llm.timeout": "seconds per model call (never the SDK's 600)",
    "llm.max_retries": "retries of a failed model call",
    "llm.temperature": "sampling temperature of replies",
    "llm.max_reply_tokens": "the longest reply the model may write",
    "llm.price_out_per_million": "USD per 1M completion tokens, for `status`",
    "inbox.debounce_max_seconds": "a burst that keeps going is cut into a turn after this long",
    "inbox.max_concurrent_turns": "turns running at once across chats",
    "agents.idle_evict_minutes": "an agent idle this long leaves memory (nothing is lost)",
    "agents.max_cached_agents": "a safety cap on agents held in memory",
    "presenter.read_delay_seconds": "pause before the read receipt",
    "presenter.min_typing_seconds": "shortest \"typing…\"",
    "presenter.max_typing_seconds": "longest \"typing…\" of one bubble",
    "presenter.jitter": "random share added to or taken from each pause",
    "presenter.bubble_chars": "a reply is split into bubbles of about this length",
    "presenter.max_bubbles": "at most this many bubbles; the rest joins the last",
    "presenter.between_bubbles_seconds": "pause between two bubbles",
    "whatsapp.session_file": "the WhatsApp Web login, in `state_dir` (mode 0600)",
    "whatsapp.session_store": "where the WhatsApp Web login lives: auto (in the database "
                              "when `database_url` is PostgreSQL, else the file), file, "
                              "database",
    "whatsapp.call_timeout": "seconds a WhatsApp Web call may take (a send waits for WhatsApp's own 75 s bound)",
    "whatsapp.probe_port": "port of `probe_host`",
    "whatsapp.backoff_cap": "the longest wait between connection attempts",
    "cloud.graph_url": "Meta's Graph API, with its version",
    "cloud.listen_port": "port of the webhook server when the console is off",
    "cloud.template_language": "the language code of `followup_template`",
    "cloud.timeout": "seconds to connect and for each read of a Graph call",
    "cloud.max_retries": "retries of a send Meta throttled or failed with 5xx",
    "cloud.backoff_initial": "first wait between send retries, doubling",
    "cloud.backoff_cap": "longest wait between send retries",
    "access.deny": "E.164 numbers never answered (no agent, no model call)",
    "limits.budget_notice": "the daily-cap notice; empty: built in, in the business's language",
    "memory.insights_every_turns": "extract insights every this many turns",
    "memory.insights_window_messages": "the newest messages the insight call reads",
    "memory.stop_grace_seconds": "at stop, memory work in flight gets this long",
    "followups.optout.start_words": "whole messages that opt back in",
    "followups.optout.start_reply": "the opt-in confirmation; empty: built in",
    "knowledge.enabled": "false: no `search_knowledge` or `send_media` tools",
    "knowledge.chunk_chars": "documents are cut into passages of about this length",
    "http.host": "the console's address; loopback unless you say otherwise",
    "webhooks.timeout_seconds": "seconds per delivery attempt",
    "webhooks.backoff_initial_seconds": "first wait before a failed delivery is retried, doubling",
    "webhooks.backoff_cap_seconds": "longest wait between delivery attempts",
    "runs.retention_days": "runs older than this are pruned",
    "fleet.renew_seconds": "how often a node renews its leases (at most a third of "
                           "`lease_seconds`)",
}


def settings_rows() -> list[dict[str, str]]:
    """One row per setting: key, env, type, default, description; sections recursed."""
    from bot.settings import Settings

    comments, examples = line_comments(), example_comments()
    rows: list[dict[str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            key = f"{prefix}{name}"
            section = _section(info.annotation)
            if section is not None:
                walk(section, key + ".")
                continue
            text = (info.description or comments.get((model.__name__, name))
                    or examples.get(key) or NOTES.get(key, ""))
            rows.append({"key": key, "env": "WABOT_" + key.upper().replace(".", "__"),
                         "type": _type(info), "default": _default(info),
                         "description": text.replace("|", "\\|")})

    walk(Settings, "")
    return rows


def _section(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _type(info: FieldInfo) -> str:
    text = _type_name(info.annotation)
    bounds = []
    for m in info.metadata:
        for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            if getattr(m, attr, None) is not None:
                bounds.append(f"{sign} {getattr(m, attr)}")
        if getattr(m, "pattern", None):
            bounds.append(f"matches `{m.pattern}`")
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _type_name(t: Any) -> str:
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (types.UnionType, typing.Union):
        named = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(named) + (", optional" if type(None) in args else "")
    if origin is list:
        inner = args[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return f"list of {inner.__name__} tables"
        return f"list of {_type_name(inner)}"
    if origin is dict:
        return f"table of {_type_name(args[0])} → {_type_name(args[1])}"
    if t is SecretStr:
        return "secret string"
    if isinstance(t, type):
        return {"Path": "path"}.get(t.__name__, t.__name__)
    return str(t)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return "`" + ", ".join(str(getattr(v, "name", v)) for v in value) + "`"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        return f"`{value}`"
    if value == "":
        return '`""`'
    return "`" + json.dumps(value, ensure_ascii=False) + "`"


def render_settings() -> str:
    rows = settings_rows()
    out: list[str] = []
    section = None
    for row in rows:
        head = row["key"].rsplit(".", 1)[0] if "." in row["key"] else ""
        if head != section:
            section = head
            out += ["", f"### `[{head}]`" if head else "### Top level", "",
                    "| key | type | default | environment variable | what it does |",
                    "| --- | --- | --- | --- | --- |"]
        out.append(f"| `{row['key']}` | {row['type']} | {row['default']} | `{row['env']}` "
                   f"| {row['description']} |")
    return "\n".join(out).strip() + "\n"


# ── API ────────────────────────────────────────────────────────────────────────────────────
def openapi() -> dict[str, Any]:
    """The document the daemon serves at /openapi.json."""
    from bot.web.server import build_app

    # The schema is built from the routes alone; the console and auth serve requests.
    return build_app(None, None).openapi()  # type: ignore[arg-type]


def render_api() -> str:
    spec = openapi()
    out = [f"# API reference (version {spec['info']['version']})", "",
           "Generated from the OpenAPI document the daemon serves at `/openapi.json` "
           "(browsable at `/docs`); regenerate it with `python -m tests.docs.generate`. "
           "Every route needs `Authorization: Bearer <token>` "
           "([Security](security.md#the-console-token)). How the console and the API are "
           "used is in [The console and the API](console-and-api.md).", ""]
    out += ["| method | path | what it does |", "| --- | --- | --- |"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            out.append(f"| `{method.upper()}` | `{path}` | {op.get('summary', '')} |")
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            out += ["", f"## `{method.upper()} {path}`", ""]
            if op.get("description"):
                out += [op["description"].strip(), ""]
            params = op.get("parameters", [])
            if params:
                out += ["| parameter | in | type | required |", "| --- | --- | --- | --- |"]
                for p in params:
                    out.append(f"| `{p['name']}` | {p['in']} | {_schema(p.get('schema', {}))} "
                               f"| {'yes' if p.get('required') else 'no'} |")
                out.append("")
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                out += ["Body (JSON): " + _body(body["schema"], spec), ""]
            codes = ", ".join(f"{code} {r.get('description', '')}".strip()
                              for code, r in op.get("responses", {}).items())
            out += [f"Answers: {codes}."]
    return "\n".join(out) + "\n"


def _schema(s: dict[str, Any]) -> str:
    if "anyOf" in s:
        return " or ".join(_schema(x) for x in s["anyOf"])
    return str(s.get("type", s.get("$ref", "any").rsplit("/", 1)[-1]))


def _body(schema: dict[str, Any], spec: dict[str, Any]) -> str:
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    required = set(schema.get("required", []))
    fields = [f"`{name}` ({_schema(s)}{', required' if name in required else ''})"
              for name, s in schema.get("properties", {}).items()]
    return ", ".join(fields) or "any object"


# ── files ──────────────────────────────────────────────────────────────────────────────────
def configuration_page(current: str) -> str:
    """The configuration page with its generated part rewritten; the prose is kept."""
    head, _, rest = current.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n\n{render_settings()}\n{END}{tail}"


def pages() -> dict[Path, str]:
    return {CONFIGURATION: configuration_page(CONFIGURATION.read_text(encoding="utf-8")),
            API_REFERENCE: render_api()}


def main(argv: list[str]) -> int:
    stale = []
    for path, text in pages().items():
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        if old != text:
            stale.append(path)
            if "--check" not in argv:
                path.write_text(text, encoding="utf-8")
    for path in stale:
        verb = "is stale" if "--check" in argv else "rewritten"
        print(f"{path.relative_to(ROOT)} {verb}")
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
