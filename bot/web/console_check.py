"""`wabot doctor`'s console line: is the port free (or ours), is there a token, what is the URL.

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
        if await _is_wabot(f"http://{h.host}:{h.port}", limit_s):
            return (True, f"{url} served by the running daemon; {token_note}; "
                    "`wabot console` prints a login link", "")
        return (False, f"{h.host}:{h.port} is taken by another program",
                "set http.port (WABOT_HTTP__PORT) to a free port, or stop that program")
    return (True, f"{url} (port free); {token_note}; "
            "`wabot console` prints a login link", "")
