"""Fail any test that tries to reach beyond this machine.

Connecting to a non-loopback address, or resolving a name other than "localhost", raises
`NetworkAccessError`. Because code under test may catch that (an HTTP client turns it into
its own connection error), every attempt is also recorded, and the test fails in teardown.
Loopback, AF_UNIX (abstract too) and binding are untouched. Opt out with
`@pytest.mark.allow_network`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_create_connection = socket.create_connection
_real_getaddrinfo = socket.getaddrinfo


class NetworkAccessError(OSError):
    """An OSError, so code under test takes its usual "network is down" path."""


def _name(host: str | bytes) -> str:
    return host.decode() if isinstance(host, bytes) else host


def is_loopback(host: str | bytes | None) -> bool:
    """Whether connecting to `host` stays on this machine. `None` (a wildcard) counts."""
    if host is None:
        return True
    host = _name(host)
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.partition("%")[0])  # drop an IPv6 zone
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def _is_numeric(host: str | bytes) -> bool:
    try:
        ipaddress.ip_address(_name(host).partition("%")[0])
    except ValueError:
        return False
    return True


class NetworkGuard:
    """Records and refuses non-loopback connections and name lookups."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def check(self, host: str | bytes | None, port: object) -> None:
        if not is_loopback(host):
            where = f"{_name(host or '')}:{port}"
            self.attempts.append(where)
            raise NetworkAccessError(f"test tried to reach the network: {where}")

    def check_address(self, family: int, address: Any) -> None:
        if family in (socket.AF_INET, socket.AF_INET6):
            self.check(address[0], address[1])

    def check_lookup(self, host: str | bytes | None, port: object) -> None:
        # Resolving a literal address never leaves the machine; connecting to it is checked.
        if host is not None and not _is_numeric(host):
            self.check(host, port)

    def take_attempts(self) -> list[str]:
        """The attempts so far, forgotten: for a test that provokes one on purpose."""
        attempts, self.attempts = self.attempts, []
        return attempts

    def verify(self) -> None:
        if self.attempts:
            pytest.fail(
                "test tried to reach the network (even if the error was caught): "
                + ", ".join(self.attempts),
                pytrace=False,
            )

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(socket.socket, "connect", self._guarded_method(_real_connect))
        monkeypatch.setattr(socket.socket, "connect_ex", self._guarded_method(_real_connect_ex))
        monkeypatch.setattr(socket, "create_connection", self._create_connection)
        monkeypatch.setattr(socket, "getaddrinfo", self._getaddrinfo)

    def _guarded_method(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(sock: socket.socket, address: Any) -> Any:
            self.check_address(sock.family, address)
            return real(sock, address)

        return guarded

    def _create_connection(self, address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        self.check(address[0], address[1])
        return _real_create_connection(address, *args, **kwargs)

    def _getaddrinfo(
        self, host: str | bytes | None, port: str | bytes | int | None, *args: Any, **kwargs: Any
    ) -> Any:
        self.check_lookup(host, port)
        return _real_getaddrinfo(host, port, *args, **kwargs)


@pytest.fixture(autouse=True)
def network_guard(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[NetworkGuard | None]:
    if request.node.get_closest_marker("allow_network"):
        yield None
        return
    guard = NetworkGuard()
    guard.install(monkeypatch)
    yield guard
    guard.verify()
