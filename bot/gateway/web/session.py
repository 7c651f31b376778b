"""The linked device's session: the state directory and the session database, owner-only.

The session file holds the keys of a linked device, so it and the journal files SQLite puts
beside it are written owner-only, and removed once WhatsApp has logged the device out.
"""

from __future__ import annotations

import os
from pathlib import Path

_SQLITE_SIDECARS = ("-journal", "-wal", "-shm")


def prepare_state_dir(state_dir: Path) -> None:
    """Create the state directory owner-only (0700); an existing one is left as it is."""
    if not state_dir.exists():
        state_dir.mkdir(parents=True, mode=0o700)
        state_dir.chmod(0o700)  # mkdir's mode is filtered by the umask


def prepare_session_file(path: Path) -> bool:
    """Make sure the session database exists with mode 0600; True when it holds a login.

    The file is created empty before the Go layer opens it, so it is never readable by
    others, not even for the moment between SQLite creating it and us tightening it.
    """
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    secure_session_files(path)
    return path.stat().st_size > 0


def secure_session_files(path: Path) -> None:
    """chmod 0600 the session database and the journal files SQLite puts beside it."""
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in _SQLITE_SIDECARS)):
        if candidate.exists():
            candidate.chmod(0o600)


def remove_session_files(path: Path) -> list[Path]:
    """Delete the session database and its journal files; returns what was removed."""
    removed = []
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in _SQLITE_SIDECARS)):
        if candidate.exists():
            candidate.unlink()
            removed.append(candidate)
    return removed
