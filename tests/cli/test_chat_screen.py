"""`wabot chat` is a clean screen: the conversation and the prompt, no log lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_chat_shows_the_conversation_only_and_leaves_on_ctrl_d(tmp_path, openai_server):
    openai_server.reply("¡Hola! ¿En qué te ayudo?")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WABOT_STATE_DIR": str(tmp_path / "data"),
           "WABOT_LLM__BASE_URL": openai_server.base_url, "WABOT_LLM__API_KEY": "test",
           "WABOT_LOG_LEVEL": "DEBUG",  # even so: the screen is the conversation's
           "WABOT_BUSINESS_FILE": str(ROOT / "config" / "business.example.yaml")}
    run = subprocess.run([sys.executable, "-m", "bot", "chat", "--as", "+5215512345678",
                          "--fast"], input="hola\n", cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "Casa Azul Shoes> ¡Hola! ¿En qué te ayudo?\nyou> " in run.stdout  # prompt redrawn
    assert run.stderr == ""  # no log lines: not httpx's, not wabot's INFO/DEBUG
