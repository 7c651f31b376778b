"""Every model call wrote `HTTP Request: POST …/chat/completions` at INFO (issue #23), under
`wabot run` and `wabot simulate` alike: the openai SDK's aiohttp client is httpx's
interface from the `httpx2` package, whose logger was not among the quietened ones."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest
from loguru import logger

from bot.llm import LLM
from bot.ops.logs import NOISY_LOGGERS, setup_logging
from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
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


async def test_a_model_call_logs_nothing_at_the_default_level(
        openai_server: FakeOpenAI) -> None:
    out = io.StringIO()
    setup_logging(stream=out)  # the default verbosity: INFO
    openai_server.reply("hola")
    llm = LLM.from_settings(api_key="k", base_url=openai_server.base_url, model="m",
                            timeout=10, max_retries=0, temperature=0.6, max_tokens=100)
    try:
        completion = await llm.complete([{"role": "user", "content": "hi"}])
    finally:
        await llm.close()
    assert completion.text == "hola"
    assert "HTTP Request" not in out.getvalue()
    assert "chat/completions" not in out.getvalue()
