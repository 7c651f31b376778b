"""sd_notify against real AF_UNIX datagram sockets, the way systemd listens."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.ops.sdnotify import Notifier, watchdog_loop


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket bound in tmp_path, as systemd's NOTIFY_SOCKET is."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(2)
        yield path, sock


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_each_message_reaches_the_socket(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    notifier = Notifier(path)

    assert notifier.ready()
    assert received(sock) == "READY=1\n"
    assert notifier.status("connected, 3 chats")
    assert received(sock) == "STATUS=connected, 3 chats\n"
    assert notifier.watchdog()
    assert received(sock) == "WATCHDOG=1\n"
    assert notifier.stopping()
    assert received(sock) == "STOPPING=1\n"


def test_fields_go_in_one_datagram_and_newlines_cannot_forge_a_field(
    listener: tuple[str, socket.socket],
) -> None:
    path, sock = listener

    Notifier(path).notify(READY=1, STATUS="waiting for QR\nREADY=0")

    assert received(sock) == "READY=1\nSTATUS=waiting for QR READY=0\n"


def test_abstract_socket() -> None:
    name = f"wabot-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2)

        assert Notifier("@" + name).ready()
        assert received(sock) == "READY=1\n"


def test_without_a_socket_everything_is_a_no_op() -> None:
    notifier = Notifier.from_env({})

    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.status("x")
    assert not notifier.watchdog()
    assert notifier.watchdog_interval() is None


def test_a_broken_socket_never_raises(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens-here"))

    assert notifier.enabled
    assert not notifier.ready()
    assert not Notifier("@wabot-no-such-abstract-socket-" + uuid.uuid4().hex).stopping()


def test_a_full_socket_drops_the_message_instead_of_blocking(
    listener: tuple[str, socket.socket],
) -> None:
    path, _ = listener
    notifier = Notifier(path)

    # Nobody reads: the receive queue fills up and a send would block the event loop.
    sent = 0
    while notifier.status("x" * 1024):
        sent += 1
        assert sent < 100_000, "the socket never filled up"

    assert sent > 0


def test_watchdog_interval_is_half_of_watchdog_usec(
    listener: tuple[str, socket.socket],
) -> None:
    path, _ = listener
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "60000000"}

    assert Notifier.from_env(env).watchdog_interval() == 30.0
    assert Notifier.from_env({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_interval() == 30.0
    # The watchdog was meant for another process (the one that started us).
    assert Notifier.from_env({**env, "WATCHDOG_PID": "1"}, pid=4242).watchdog_interval() is None
    assert Notifier.from_env({**env, "WATCHDOG_USEC": "junk"}).watchdog_interval() is None
    assert Notifier.from_env({"WATCHDOG_USEC": "60000000"}).watchdog_interval() is None


async def test_watchdog_loop_pings_between_sleeps(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await watchdog_loop(Notifier(path), 30.0, sleep)

    assert sleeps == [30.0, 30.0, 30.0]
    assert [received(sock) for _ in range(3)] == ["WATCHDOG=1\n"] * 3
