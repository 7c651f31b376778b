"""`wabot simulate` (and every command) printed `httpx2 | HTTP Request: POST …/chat/
completions "HTTP/1.1 200 OK"` INFO lines at default verbosity, one per model call: the
openai SDK's HTTP client logs under its own name, which was not among the quieted
libraries. The loggers of the clients the model and the webhooks use stay at WARNING
unless `-vv`."""

from __future__ import annotations

import io
import logging
import sys

import pytest
from loguru import logger

from bot.ops.logs import setup_logging


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    logger.remove()
    logger.configure(patcher=lambda record: None)
    logger.add(sys.stderr)
    root.handlers[:] = handlers
    root.setLevel(level)


def client_loggers() -> set[str]:
    """The logger names of the HTTP clients wabot's parts use, read from the clients."""
    import httpx
    import openai._base_client as sdk

    names = {httpx.__name__}
    names |= {getattr(sdk, attr).__name__ for attr in ("httpx", "httpx2") if hasattr(sdk, attr)}
    return names


def test_client_request_lines_are_quiet_at_default_level():
    out = io.StringIO()
    setup_logging("INFO", stream=out)
    for name in client_loggers():
        logging.getLogger(name).info("HTTP Request: POST http://x/v1/chat/completions 200")
        logging.getLogger(name).warning("%s: the server closed the connection", name)
    text = out.getvalue()
    assert "HTTP Request" not in text
    for name in client_loggers():
        assert f"{name}: the server closed the connection" in text
