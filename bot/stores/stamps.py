"""Change stamps: how a command run in another process tells the daemon's cached agents
that a customer changed under them (`wabot pause`, `resume`, `forget` …).

The database stays the truth: the command commits its change there first, then appends the
customer's phone to a small file in the state directory. The daemon checks the file's size
(one `stat`, about a microsecond, no SQL) before it trusts a cached customer, and drops the
cached agents named in the new lines: their next use reloads them from the database.
A line is written with one `O_APPEND` write, so concurrent commands never interleave.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from bot.models import CustomerKey

EVERYONE = "*"  # a line that stands for every customer (e.g. the file was truncated)


def stamp_path(state_dir: Path, tenant: str) -> Path:
    return state_dir / f"changes-{tenant}.log"


def mark_changed(state_dir: Path, key: CustomerKey) -> None:
    """Called by a command after it committed a change to `key` (any process)."""
    path = stamp_path(state_dir, key.tenant)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{key.phone}\n".encode())
    finally:
        os.close(fd)


class ChangeStamps:
    """The daemon's reader: which customers changed since the last look."""

    def __init__(self, state_dir: Path, tenant: str) -> None:
        self.path = stamp_path(state_dir, tenant)
        # Made empty when missing: a `stat` of a missing file raises, and an exception
        # object per look (several a turn) cost more than the look itself.
        with contextlib.suppress(OSError):  # a read-only state directory: as before
            os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        self._offset = self._size()  # what is there already was committed before we loaded

    def _size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    def poll(self) -> list[str]:
        """Phones changed since the last call ([EVERYONE] when that cannot be known)."""
        size = self._size()
        if size == self._offset:
            return []
        if size < self._offset:  # truncated or replaced: assume anyone may have changed
            self._offset = size
            return [EVERYONE]
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read(size - self._offset)
        complete = data.rfind(b"\n") + 1  # a line still being written waits for next time
        self._offset += complete
        return [p for p in data[:complete].decode(errors="replace").split("\n") if p]
