"""A MongoDB server for the tests: SecantusDB (a MongoDB wire-protocol server on WiredTiger,
test-only, GPL-2.0, never shipped) in a process of its own, on a loopback ephemeral port,
holding its data in memory.

`python -m tests.fakes.mongo_server` prints the server's URL on one line and serves until its
standard input closes, so the server never outlives the test run that started it.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALL = "pip install SecantusDB==0.7.0b3"


def available() -> bool:
    """Whether SecantusDB is installed in this environment."""
    return importlib.util.find_spec("secantus") is not None


@contextmanager
def mongo_server(timeout: float = 30.0) -> Iterator[str]:
    """Start SecantusDB and yield its `mongodb://127.0.0.1:PORT/` URL; stop it on exit."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.mongo_server"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        url = proc.stdout.readline().strip()
        if not url.startswith("mongodb://127.0.0.1:"):
            raise RuntimeError(f"SecantusDB did not start (exit code {proc.poll()}, said {url!r})")
        yield url
    finally:
        proc.stdin.close()  # the server's cue to stop
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def main() -> None:
    from secantus.server import SecantusDBServer

    server = SecantusDBServer("127.0.0.1", 0, ":memory:", enable_test_commands=False)
    server.start()
    try:
        print(server.uri, flush=True)
        sys.stdin.read()  # until the parent closes the pipe (or dies)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
