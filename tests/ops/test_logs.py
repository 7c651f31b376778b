"""Logging setup: the three outputs, stdlib routing, and masking of what must never be logged."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from loguru import logger

from bot.ops.logs import NOISY_LOGGERS, InterceptHandler, mask_text, setup_logging

TIME = re.compile(r"\d{2}:\d{2}:\d{2}")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """setup_logging rewires process-wide state: put loguru and stdlib logging back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    yield
    logger.remove()
    logger.configure(patcher=lambda record: None)
    logger.add(sys.stderr)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, noisy_level in noisy.items():
        logging.getLogger(name).setLevel(noisy_level)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


# --- the three outputs --------------------------------------------------------------------


def test_human_line_has_time_level_message_and_bound_extras() -> None:
    out = io.StringIO()
    setup_logging(stream=out)

    logger.bind(msg_id="3EB0C767D26A1B2C", chat=7).info("turn done")

    line = out.getvalue()
    assert TIME.search(line)
    assert "| INFO " in line
    assert line.rstrip().endswith("turn done msg_id=3EB0C767D26A1B2C chat=7")
    assert "\x1b[" not in line  # not a terminal: no colours


def test_colours_on_a_terminal_and_markup_in_messages_is_left_alone() -> None:
    out = Tty()
    setup_logging(stream=out)

    logger.bind(note="<red>{x}</red>").info("<b>bold?</b> {braces}")

    assert "\x1b[" in out.getvalue()
    assert "<b>bold?</b> {braces}" in out.getvalue()
    assert "note=<red>{x}</red>" in out.getvalue()


def test_no_colour_when_NO_COLOR_is_set() -> None:
    out = Tty()
    setup_logging(stream=out, environ={"NO_COLOR": "1"})

    logger.info("plain")

    assert "\x1b[" not in out.getvalue()


def test_journald_lines_carry_a_syslog_priority_and_no_timestamp() -> None:
    out = io.StringIO()
    setup_logging(level="DEBUG", environ={"JOURNAL_STREAM": "8:12345"}, stream=out)

    logger.bind(customer="+5215512345678").info("connected")
    logger.debug("detail")
    logger.warning("slow reply")
    logger.error("turn failed")

    lines = out.getvalue().splitlines()
    assert [line[:3] for line in lines] == ["<6>", "<7>", "<4>", "<3>"]
    assert lines[0].endswith("connected customer=+52155****5678")
    assert not TIME.search(out.getvalue())


def test_journald_prefixes_every_line_of_a_traceback() -> None:
    out = io.StringIO()
    setup_logging(environ={"JOURNAL_STREAM": "8:12345"}, stream=out)

    try:
        raise RuntimeError("database went away")
    except RuntimeError:
        logger.exception("turn failed")

    lines = out.getvalue().splitlines()
    assert len(lines) > 2
    assert all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>RuntimeError: database went away"


def test_journal_stream_of_another_file_is_not_journald(tmp_path: Path) -> None:
    # JOURNAL_STREAM is inherited: it only counts when it names the stream we write to.
    with (tmp_path / "log").open("w+") as out:
        st = os.fstat(out.fileno())
        setup_logging(environ={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, stream=out)
        logger.info("to a file")
        setup_logging(environ={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, stream=out)
        logger.info("to the journal")
        out.seek(0)
        first, second = out.read().splitlines()

    assert TIME.search(first)
    assert second.startswith("<6>")


def test_json_lines_are_parseable_and_carry_extras() -> None:
    out = io.StringIO()
    setup_logging(json=True, stream=out)

    logger.bind(customer="+5215512345678", msg_id="3EB0C767D26A1B2C").warning("reply sent")

    record = json.loads(out.getvalue())["record"]
    assert record["message"] == "reply sent"
    assert record["level"]["name"] == "WARNING"
    assert record["extra"] == {"customer": "+52155****5678", "msg_id": "3EB0C767D26A1B2C"}


def test_level_filters_and_calling_twice_does_not_duplicate() -> None:
    out = io.StringIO()
    setup_logging(level="WARNING", stream=out)
    setup_logging(level="info", stream=out)

    logger.debug("hidden")
    logger.info("once")

    assert out.getvalue().count("once") == 1
    assert "hidden" not in out.getvalue()


# --- stdlib logging -------------------------------------------------------------------------


def test_stdlib_logging_reaches_loguru_under_its_logger_name() -> None:
    out = io.StringIO()
    setup_logging(stream=out)

    logging.getLogger("whatsmeow.Client").warning("Stream replaced")

    assert "WARNING" in out.getvalue()
    assert "whatsmeow.Client | Stream replaced" in out.getvalue()


def test_neonize_style_basic_config_before_or_after_setup_is_replaced() -> None:
    # neonize calls logging.basicConfig(level=INFO, handlers=[StreamHandler()]) at import.
    logging.basicConfig(level=logging.INFO, handlers=[logging.StreamHandler()], force=True)
    out = io.StringIO()
    setup_logging(stream=out)
    logging.basicConfig(level=logging.INFO, handlers=[logging.StreamHandler()])

    assert [type(h) for h in logging.getLogger().handlers] == [InterceptHandler]
    logging.getLogger("neonize.client").info("hello")
    assert out.getvalue().count("hello") == 1


def test_stdlib_exceptions_keep_their_traceback() -> None:
    out = io.StringIO()
    setup_logging(stream=out)

    try:
        raise ValueError("bad job")
    except ValueError:
        logging.getLogger("apscheduler.executors").exception("Job raised")

    assert "Job raised" in out.getvalue()
    assert "ValueError: bad job" in out.getvalue()


def test_noisy_libraries_are_quiet_unless_debugging() -> None:
    out = io.StringIO()
    setup_logging(stream=out)
    logging.getLogger("httpx").info("HTTP Request: POST /v1/chat/completions")
    logging.getLogger("apscheduler.scheduler").warning("job missed")

    setup_logging(level="DEBUG", stream=out)  # -v: wabot's debug lines, not the libraries'
    logger.debug("wabot detail")
    logging.getLogger("sqlalchemy.engine").info("SELECT customers")
    setup_logging(level="TRACE", stream=out)  # -vv: the libraries' internals too
    logging.getLogger("httpx").info("HTTP Request: GET /debugging")

    text = out.getvalue()
    assert "/v1/chat/completions" not in text
    assert "job missed" in text
    assert "wabot detail" in text and "SELECT customers" not in text
    assert "/debugging" in text


# --- masking ----------------------------------------------------------------------------------

MASKED = [
    ("from +5215512345678 today", "from +52155****5678 today"),
    ("from 5215512345678", "from +52155****5678"),
    ("jid 5215512345678@s.whatsapp.net", "jid +52155****5678@s.whatsapp.net"),
    ("device 5215512345678:12@s.whatsapp.net", "device +52155****5678@s.whatsapp.net"),
    ("lid 123456789012345@lid", "lid 123456****2345@lid"),
    ("hosted 123456789012345:99@hosted.lid", "hosted 123456****2345@hosted.lid"),
    ("redis://:hunter22@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("job followup:+5215512345678:nudge", "job followup:+52155****5678:nudge"),
    ("key sk-proj-AbCdEf0123456789xyz", "key sk-pro***"),
    ("Authorization: Bearer abc.def-123456789", "Authorization: Bearer ***"),
    ("postgresql://wabot:s3cr3t@db:5432/wabot", "postgresql://wabot:***@db:5432/wabot"),
    ("postgresql+asyncpg://u:p%40ss@127.0.0.1/w", "postgresql+asyncpg://u:***@127.0.0.1/w"),
    ("mongodb+srv://bot:hunter2@c0.mongodb.net/db", "mongodb+srv://bot:***@c0.mongodb.net/db"),
    ("login failed: password=hunter2", "login failed: password=***"),
]

KEPT = [
    "message 3EB0C767D26A1B2C from chat",
    "id BAE5F4C0123456789012",
    "at 2026-11-21T00:52:00.123+00:00 and 12:30:45",
    "sent 3 bubbles in 1234 ms, 42 customers, 1234567 tokens",
    "postgresql://db.internal:5432/wabot",
    "request 123e4567-e89b-12d3-a456-426614174000",
    "elapsed 1732150000.25 s",
    "prompt_tokens=812 max_tokens: 500",
    "sk-learn is a library",
]


@pytest.mark.parametrize(("raw", "masked"), MASKED)
def test_mask_text(raw: str, masked: str) -> None:
    assert mask_text(raw) == masked
    assert mask_text(masked) == masked  # idempotent


@pytest.mark.parametrize("text", KEPT)
def test_mask_text_keeps_ids_times_and_counts(text: str) -> None:
    assert mask_text(text) == text


@dataclass(frozen=True)
class Key:
    tenant: str
    phone: str


@pytest.mark.parametrize("json_mode", [False, True], ids=["human", "json"])
def test_nothing_secret_reaches_any_output(json_mode: bool) -> None:
    out = io.StringIO()
    setup_logging(json=json_mode, stream=out)

    log = logger.bind(
        customer="+5215512345678",
        key=Key("shop", "+5215512345678"),
        jid="5215512345678:3@s.whatsapp.net",
        api_key="not-an-sk-key",
        msg_id="3EB0C767D26A1B2C",
    )
    log.info("hello {} using {}", "5215512345678@s.whatsapp.net", "sk-abcdefghijklmnop")
    logging.getLogger("whatsmeow.Client").info("Connected as 5215512345678.0:3@s.whatsapp.net")
    try:
        raise ValueError("no agent for +5215512345678 at postgresql://u:pw@db/w")
    except ValueError:
        log.exception("turn failed")

    text = out.getvalue()
    for secret in ("5215512345678", "sk-abcdefghijklmnop", "not-an-sk-key", ":pw@"):
        assert secret not in text
    assert "+52155****5678" in text
    assert "3EB0C767D26A1B2C" in text


def test_sinks_added_later_are_masked_too() -> None:
    setup_logging(stream=io.StringIO())
    seen: list[str] = []
    logger.add(lambda message: seen.append(str(message)), format="{message} {extra}")

    logger.bind(phone="+5215512345678").info("call +5215512345678")

    assert seen == ["call +52155****5678 {'phone': '+52155****5678'}\n"]
