"""systemd service notifications (sd_notify) without a dependency.

The protocol is one datagram of `KEY=value` lines sent to the AF_UNIX socket named by
`NOTIFY_SOCKET`. Without a socket (a terminal, the tests) every call is a no-op, and a
failure to notify never reaches the caller: telling systemd how we are must not be what
takes the daemon down.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

from loguru import logger

Sleep = Callable[[float], Awaitable[object]]


class Notifier:
    """Sends sd_notify messages to one socket (filesystem path or abstract `@name`)."""

    def __init__(self, socket_path: str | None, watchdog_usec: int | None = None) -> None:
        self._address = _address(socket_path) if socket_path else None
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None

    @classmethod
    def from_env(cls, environ: Mapping[str, str], pid: int | None = None) -> Notifier:
        """Build from `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (the CLI passes os.environ).

        `WATCHDOG_PID` names the process the watchdog is meant for: when it is set and is not
        us (we were started by a process that was itself supervised), the watchdog is off.
        """
        usec = _positive_int(environ.get("WATCHDOG_USEC"))
        watchdog_pid = _positive_int(environ.get("WATCHDOG_PID"))
        if watchdog_pid is not None and watchdog_pid != (os.getpid() if pid is None else pid):
            usec = None
        return cls(environ.get("NOTIFY_SOCKET") or None, usec)

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify."""
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings: half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3) advises."""
        if self._address is None or self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def ready(self) -> bool:
        """The service is up: `Type=notify` start-up is complete."""
        return self.notify(READY=1)

    def status(self, text: str) -> bool:
        """A one-line status shown by `systemctl status`."""
        return self.notify(STATUS=text)

    def report(self, text: str) -> None:
        """`status` as a plain callback (for components that take `Callable[[str], None]`)."""
        self.status(text)

    def stopping(self) -> bool:
        """Shutdown has begun (before the grace period for turns in flight)."""
        return self.notify(STOPPING=1)

    def watchdog(self) -> bool:
        """Keep-alive ping: we are still alive and our event loop still turns."""
        return self.notify(WATCHDOG=1)

    def notify(self, **fields: str | int) -> bool:
        """Send `KEY=value` fields in one datagram; True if it was sent.

        Values are flattened to one line: a newline would start a bogus field.
        """
        if self._address is None or not fields:
            return False
        payload = "".join(f"{key}={_one_line(value)}\n" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never block the event loop: a full receive queue drops this message instead.
                sock.setblocking(False)
                sock.connect(self._address)
                sock.sendall(payload.encode())
        except OSError as exc:
            logger.debug("sd_notify to {} failed: {}", self._address, exc)
            return False
        return True


async def watchdog_loop(notifier: Notifier, interval: float, sleep: Sleep = asyncio.sleep) -> None:
    """Ping the watchdog every `interval` seconds until cancelled.

    Run it as a task on the daemon's event loop, not in a thread: if the loop wedges the
    pings stop, and systemd (`WatchdogSec=`) kills and restarts us.
    """
    while True:
        notifier.watchdog()
        await sleep(interval)


def _address(socket_path: str) -> str | bytes:
    # `@name` is the abstract namespace, spelled with a leading NUL byte on the wire.
    if socket_path.startswith("@"):
        return b"\0" + socket_path[1:].encode()
    return socket_path


def _one_line(value: str | int) -> str:
    return " ".join(str(value).splitlines())


def _positive_int(raw: str | None) -> int | None:
    try:
        value = int(raw) if raw else 0
    except ValueError:
        return None
    return value if value > 0 else None
