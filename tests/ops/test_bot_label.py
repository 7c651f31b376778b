"""`pacing.bot_label` → NEONIZE_BOT_TAG, in the environment before neonize loads Go.

goneonize/main.go shouldAddBotNode reads NEONIZE_BOT_TAG ("off", "none", "false", "0" turn
the `<bot biz_bot="1"/>` node off; anything else, unset included, keeps it on), and Go's
runtime copies the environment when the library loads: the variable must be set before
`import neonize`. Each case runs in a fresh interpreter, so nothing here has imported it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import builtins, json, os, sys
seen = {}
real_import = builtins.__import__

def watching(name, *args, **kwargs):
    if name == "neonize" or name.startswith("neonize."):
        seen.setdefault("at_import", os.environ.get("NEONIZE_BOT_TAG"))
    return real_import(name, *args, **kwargs)

builtins.__import__ = watching
from bot.ops.daemon import neonize_gateway
from bot.ops.sdnotify import Notifier
from bot.settings import load_settings
assert "neonize" not in sys.modules, "neonize was imported before the gateway was built"
settings = load_settings(None, state_dir=sys.argv[1], pacing={"bot_label": sys.argv[2] == "on"})
neonize_gateway(settings, Notifier(None))
print(json.dumps(seen))
"""


@pytest.mark.parametrize(("label", "expected"), [("off", "off"), ("on", "on")])
def test_the_bot_label_variable_is_set_before_neonize_is_imported(
        tmp_path: Path, label: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WABOT_", "NEONIZE_"))}
    env["NEONIZE_BOT_TAG"] = "on" if label == "off" else "off"  # the setting wins
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "state"), label],
                          cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"at_import": expected}


def test_the_default_is_off() -> None:
    from bot.settings import PacingSettings

    assert PacingSettings().bot_label is False
