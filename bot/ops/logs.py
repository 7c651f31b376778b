"""Logging: loguru configured once, stdlib logging routed into it, secrets masked.

Three outputs: a readable line on a terminal, `<N>`-prefixed lines without a timestamp
under journald (it stamps and indexes by priority itself), and JSON lines. Whatever the
output, phone numbers, WhatsApp ids and secrets are masked in the message, the bound
extras and tracebacks, because callers will eventually log something they should not.
"""

from __future__ import annotations

import inspect
import json as jsonlib
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

from bot.phones import from_whatsapp, mask

if TYPE_CHECKING:
    from loguru import Message, Record

# stdlib loggers that chat at INFO (one line per HTTP request, job run or SQL statement):
# kept at WARNING unless we are debugging.
NOISY_LOGGERS = (
    "apscheduler",
    "httpx",
    "httpx2",  # the openai SDK's HTTP client (httpx-aiohttp): an INFO line per model call
    "httpx_aiohttp",
    "httpcore",
    "aiohttp",
    "openai",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "pymongo",
    "beanie",
    "asyncio",
)

HUMAN_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "<cyan>{name}</cyan> | <level>{message}</level>"
)
JOURNAL_FORMAT = "{level} | {name} | {message}"

# --- masking -----------------------------------------------------------------------------

# A WhatsApp JID's user part (with optional `.agent` and `:device`) on a personal server.
# Groups and newsletters are chats, not people; their digits are caught by _NUMBER if long.
_JID = re.compile(
    r"(?<![^\W_])(\d{5,20})(?:\.\d+)?(?::\d+)?@(s\.whatsapp\.net|c\.us|lid|hosted(?:\.lid)?)\b"
)
# The key of a customer known only by LID (`bot.phones.lid_customer`).
_LID_KEY = re.compile(r"(?<![^\W_])lid:\d{5,20}(?![^\W_])")
# 8 to 15 digits (E.164 allows 15), optionally with '+', standing alone: '_', '/', ':', '@'
# and spaces are boundaries; letters and digits are not, so a message id (3EB0C767D26A1B2C)
# or a longer digit run is left alone. Not the digits of a decimal (1732150000.25), nor a
# UUID's last group (…-426614174000).
_NUMBER = re.compile(
    r"(?<![^\W_])(?<!\+)(?<!\d[.,])(?<![0-9A-Fa-f]{4}-)\+?\d{8,15}(?![^\W_])(?![.,]\d)"
)
_OPENAI_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]{8,}")
# `password=…`, `api_key: …` written into a message.
_ASSIGNED_SECRET = re.compile(
    r"(?i)\b((?:password|passwd|secret|token|api[_-]?key)\s*[=:]\s*)[^\s,;'\"&]+"
)
# scheme://user:password@host: keep the user and host, hide the password.
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^\s:/@]*:)[^\s@/]+(@)", re.IGNORECASE)
# Bound extras whose name says they are a secret are hidden whatever their value.
_SECRET_KEY = re.compile(r"(?i)(?:\w*_)?(?:password|passwd|secret|token|api_?key|authorization)")


def mask_text(text: str) -> str:
    """`text` with phone numbers, WhatsApp JIDs, API keys, tokens and passwords masked.

    Idempotent: masking a masked text changes nothing.
    """
    # Secrets first: their digits must be hidden whole, not turned into a phone mask.
    text = _OPENAI_KEY.sub(lambda m: m.group()[:6] + "***", text)
    text = _BEARER.sub(r"\1***", text)
    text = _ASSIGNED_SECRET.sub(r"\1***", text)
    text = _URL_PASSWORD.sub(r"\1***\2", text)
    text = _JID.sub(_mask_jid, text)
    text = _LID_KEY.sub(lambda m: mask(m.group()), text)  # an opaque id: no '+' added
    text = _SPACED.sub(_mask_spaced, text)
    return _NUMBER.sub(lambda m: mask("+" + m.group().lstrip("+")), text)


# Digit groups broken by single spaces ("+52 55 1234 5678", "4111 1111 1111 1111"): a
# number or a card typed by a person. Dates and times use other separators.
_SPACED = re.compile(r"(?<![^\W_])\+?\d{1,4}(?: \d{2,5}){2,}(?![^\W_])")


def _mask_spaced(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    if len(digits) < 8:
        return match.group()
    return mask("+" + digits) if len(digits) <= 15 else "***" + digits[-4:]


def _mask_jid(match: re.Match[str]) -> str:
    user, server = match.group(1), match.group(2)
    # A LID is an opaque id, not a phone number: no '+'.
    masked = mask(user) if server.endswith("lid") else mask(from_whatsapp(user))
    return f"{masked}@{server}"


def _mask_value(value: Any) -> Any:
    # Numbers and objects (a CustomerKey holding a phone) are rendered with str() by every
    # sink, so they are masked as their text when that text holds something to hide.
    if isinstance(value, str):
        return mask_text(value)
    if value is None or isinstance(value, bool | float):
        return value
    text = str(value)
    masked = mask_text(text)
    return value if masked == text else masked


def _mask_record(record: Record) -> None:
    """loguru patcher: mask the message and every bound extra before any sink sees them."""
    record["message"] = mask_text(record["message"])
    extra = record["extra"]
    for key, value in extra.items():
        extra[key] = "***" if _SECRET_KEY.fullmatch(key) else _mask_value(value)


# --- output --------------------------------------------------------------------------------

_EXTRA_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _with_extras(base: str) -> Callable[[Record], str]:
    """A format function appending the record's bound extras as ` key=value`."""

    def fmt(record: Record) -> str:
        # Only identifier keys: anything else would break loguru's `{extra[...]}` lookup.
        keys = [key for key in record["extra"] if _EXTRA_KEY.fullmatch(key)]
        extras = "".join(f" {key}={{extra[{key}]}}" for key in keys)
        return base + extras + "\n{exception}"

    return fmt


def _syslog_priority(level_no: int) -> int:
    """loguru level number → syslog priority (sd-daemon(3) `<N>` prefixes)."""
    for threshold, priority in ((50, 2), (40, 3), (30, 4), (25, 5), (20, 6)):
        if level_no >= threshold:
            return priority
    return 7


class _Sink:
    """Writes formatted records to a stream, masking what a patcher cannot reach: tracebacks."""

    def __init__(self, stream: TextIO, render: Callable[[Message], str]) -> None:
        self._stream = stream
        self._render = render

    def write(self, message: Message) -> None:
        self._stream.write(self._render(message))

    def flush(self) -> None:
        self._stream.flush()


def _render_text(message: Message) -> str:
    return mask_text(str(message))


def _render_journal(message: Message) -> str:
    # journald reads the priority from each line: a traceback keeps its record's priority.
    prefix = f"<{_syslog_priority(message.record['level'].no)}>"
    lines = mask_text(str(message)).splitlines()
    return "".join(f"{prefix}{line}\n" for line in lines)


def _render_json(message: Message) -> str:
    # Only the text and the exception hold caller data here; the record's message and
    # extras were masked by the patcher, and masking the whole line would also hit
    # epoch timestamps and thread ids.
    data = jsonlib.loads(str(message))
    data["text"] = mask_text(data["text"])
    exception = data["record"].get("exception")
    if exception and isinstance(exception.get("value"), str):
        exception["value"] = mask_text(exception["value"])
    return jsonlib.dumps(data, ensure_ascii=False) + "\n"


def _under_journald(environ: Mapping[str, str], stream: TextIO) -> bool:
    """True when `stream` is journald's stdout/stderr stream (systemd.exec(5) JOURNAL_STREAM).

    The variable is inherited by anything we start, so it only counts when its
    device:inode matches our stream; a stream without a file descriptor trusts it.
    """
    value = environ.get("JOURNAL_STREAM")
    if not value:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return True
    return value == f"{st.st_dev}:{st.st_ino}"


# --- stdlib logging -------------------------------------------------------------------------


class InterceptHandler(logging.Handler):
    """Route stdlib `logging` records into loguru (the loguru README recipe)."""

    def emit(self, record: logging.LogRecord) -> None:
        level: str | int
        try:
            level = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        # Find the caller outside the logging module so {name} is the library, not logging.
        frame, depth = inspect.currentframe(), 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        # Keep the stdlib logger's name (whatsmeow.Client, apscheduler.scheduler): the frame
        # that logged is often a shared helper such as neonize's log-forwarding thread.
        named = logger.patch(partial(_rename, name=record.name))
        named.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def _rename(record: Record, name: str) -> None:
    record["name"] = name


def _route_stdlib(level_no: int, debug: bool) -> None:
    # force=True replaces what neonize's import-time basicConfig installed; after this,
    # its basicConfig is a no-op because root already has a handler.
    logging.basicConfig(handlers=[InterceptHandler()], level=level_no, force=True)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.WARNING)


# --- entry ---------------------------------------------------------------------------------


def setup_logging(
    level: str = "INFO",
    json: bool = False,
    environ: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure loguru for the whole process; returns nothing.

    `level` is a loguru level name (TRACE, DEBUG, INFO, SUCCESS, WARNING, ERROR). `json`
    writes one JSON object per line (loguru `serialize=True`). Otherwise the output is a
    readable line, or `<N>`-prefixed lines without a timestamp when `environ` (the CLI
    passes os.environ; None means an empty environment) shows journald owns `stream`
    (default: sys.stderr at call time). Colours on a terminal unless NO_COLOR is set.

    Replaces every loguru sink and the stdlib root handlers, so calling it again
    reconfigures instead of duplicating output. Phone numbers, WhatsApp ids, API keys,
    bearer tokens, `password=…` and URL passwords are masked in every sink, including ones
    added later (a loguru patcher: a later `logger.configure(patcher=…)` would replace it).
    """
    environ = {} if environ is None else environ
    stream = sys.stderr if stream is None else stream
    level = level.upper()
    level_no = logger.level(level).no

    logger.remove()
    logger.configure(patcher=_mask_record)
    # diagnose=False: variable values in tracebacks are exactly where secrets hide.
    logger.add(level=level, backtrace=False, diagnose=False, **_output(json, environ, stream))
    # -v (DEBUG) is wabot's own debug lines; the libraries' internals (SQLAlchemy, aiosqlite,
    # HTTP) only at TRACE (-vv).
    _route_stdlib(level_no, debug=level_no <= logger.level("TRACE").no)


def _output(json: bool, environ: Mapping[str, str], stream: TextIO) -> dict[str, Any]:
    """The sink and format arguments of `logger.add` for the chosen output."""
    if json:
        return {"sink": _Sink(stream, _render_json), "format": "{message}", "serialize": True}
    if _under_journald(environ, stream):
        sink = _Sink(stream, _render_journal)
        return {"sink": sink, "format": _with_extras(JOURNAL_FORMAT), "colorize": False}
    colorize = _isatty(stream) and "NO_COLOR" not in environ
    sink = _Sink(stream, _render_text)
    return {"sink": sink, "format": _with_extras(HUMAN_FORMAT), "colorize": colorize}


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError, AttributeError):
        return False
