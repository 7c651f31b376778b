"""With Python's default collector settings the daemon spent about 15 % of a warm turn's CPU
in garbage collections, and every full collection walked the ~180,000 objects of the
imported web, database and model stacks, stopping every chat for 0.2–0.4 s (issue #23).
`wabot run` now freezes what the imports made and collects less often."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc
from bot.cli.daemon import collect_for_a_daemon
from bot.ops.daemon import run_daemon  # what `wabot run` imports before it starts

collect_for_a_daemon()
frozen, threshold = gc.get_freeze_count(), gc.get_threshold()
left = len(gc.get_objects())
print(frozen, threshold[0], left)
"""


def test_a_full_collection_no_longer_walks_the_imported_stacks():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    frozen, young, left = int(out[0]), int(out[1]), int(out[2])
    assert frozen > 100_000, "the imported stacks are not frozen"
    assert left < frozen / 10, "a full collection would still walk most of them"
    assert young >= 10_000, "a collection after every 700 new objects promotes a turn's"
