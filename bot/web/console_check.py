"""`wabot doctor`'s console line: is the port free (or ours), is there a token, what is the URL.

A console on the port is ours only when it takes this configuration's token and serves its
tenant: a wabot console of another instance is said to be one.

Returns (ok, detail, fix) for the doctor to print as one of its checks."""

from __future__ import annotations

import socket
import stat

import httpx

from bot.settings import Settings
from bot.web.auth import read_token, token_path


def console_url(settings: Settings) -> str:
    h = settings.http
    if h.public_url:
        return h.public_url.rstrip("/")
    host = f"[{h.host}]" if ":" in h.host else h.host
    return f"http://{host}:{h.port}"


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


async def _is_wabot(url: str, limit_s: float) -> bool:
    try:
        async with httpx.AsyncClient(timeout=limit_s) as client:
            resp = await client.get(url + "/healthz")
        return resp.status_code == 200 and resp.json().get("ok") is True
    except (httpx.HTTPError, ValueError):
        return False


async def _whose(url: str, token: str | None, tenant: str, limit_s: float) -> str | None:
    """None when the wabot console at `url` is this configuration's (it takes this console
    token and serves this tenant); else why it is another instance's."""
    if token is None:
        return "this configuration has no console token yet, so it is not its daemon"
    try:
        async with httpx.AsyncClient(timeout=limit_s) as client:
            resp = await client.get(url + "/api/v1/status",
                                    headers={"Authorization": f"Bearer {token}"})
        served = resp.json().get("tenant") if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return "it did not answer as this configuration's daemon"
    if resp.status_code in (401, 403):
        return "it refuses this configuration's console token"
    if served != tenant:
        return f"it serves tenant {served}, not {tenant}" if served else (
            f"it answered HTTP {resp.status_code} with this configuration's token")
    return None


async def check_console(settings: Settings, limit_s: float = 3.0) -> tuple[bool, str, str]:
    h = settings.http
    if not h.enabled:
        return (True, "switched off (http.enabled = false)", "")
    url = console_url(settings)
    token = read_token(settings)
    path = token_path(settings)
    if token is None:
        token_note = f"token generated into {path} on first start"
    elif h.api_token is not None:
        token_note = "token set in the configuration"
    else:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            return (False, f"{path} is readable by others (mode {mode:04o})",
                    f"chmod 600 {path}")
        token_note = f"token in {path}"
    if h.port and not _port_free(h.host, h.port):
        local = f"http://{h.host}:{h.port}"
        if not await _is_wabot(local, limit_s):
            return (False, f"{h.host}:{h.port} is taken by another program",
                    "set http.port (WABOT_HTTP__PORT) to a free port, or stop that program")
        if (other := await _whose(local, token, settings.tenant, limit_s)) is not None:
            return (False, f"{h.host}:{h.port} is held by another wabot instance ({other})",
                    "give this instance its own http.port (WABOT_HTTP__PORT), or stop the "
                    "other one")
        return (True, f"{url} served by the running daemon (tenant {settings.tenant}); "
                f"{token_note}; `wabot console` prints a login link", "")
    return (True, f"{url} (port free); {token_note}; "
            "`wabot console` prints a login link", "")
