"""Who may use the console: the API token, one-time login links, the session cookie, CSRF.

- The API takes `Authorization: Bearer <http.api_token>`. When no token is configured,
  `wabot run` generates one into STATE_DIR/console-token (mode 0600); `wabot console`
  reads it from there.
- `wabot console` prints a one-time login link: a code signed with the token, valid
  `LINK_SECONDS`, accepted once by the daemon. The page can also be opened by pasting the token.
- After login the browser keeps a signed session cookie (HttpOnly, SameSite=Strict);
  every state-changing form carries a CSRF token derived from the session.
- Wrong or missing credentials are 401; more than `failed_auth_per_minute` of them from
  one client within a minute are 429 until the minute has passed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections import deque
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from bot.settings import Settings

TOKEN_FILE = "console-token"
SESSION_COOKIE = "wabot_session"
LINK_SECONDS = 600


def token_path(settings: Settings) -> Path:
    return settings.state_dir / TOKEN_FILE


def read_token(settings: Settings) -> str | None:
    """The configured token, else the generated one, else None."""
    if settings.http.api_token is not None:
        return settings.http.api_token.get_secret_value()
    path = token_path(settings)
    if path.is_file():
        text = path.read_text(encoding="utf-8").strip()
        return text or None
    return None


def ensure_token(settings: Settings) -> str:
    """The token; generated into the state directory (0600) when none exists yet."""
    found = read_token(settings)
    if found:
        return found
    settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    path = token_path(settings)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    path.chmod(0o600)
    return token


def login_code(token: str) -> str:
    """A one-time login code for `/login?code=…` (signed with the token, time-limited)."""
    return URLSafeTimedSerializer(token, salt="wabot-login").dumps(secrets.token_hex(8))


class Auth:
    def __init__(self, token: str, session_seconds: float, failures_per_minute: int) -> None:
        self.token = token
        self.session_seconds = session_seconds
        self.failures_per_minute = failures_per_minute
        self._sessions = URLSafeTimedSerializer(token, salt="wabot-session")
        self._links = URLSafeTimedSerializer(token, salt="wabot-login")
        self._used_links: dict[str, float] = {}
        self._failures: dict[str, deque[float]] = {}

    # --- the API token -------------------------------------------------------------------

    def bearer_ok(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header.removeprefix("Bearer ").strip().encode(),
                                   self.token.encode())

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(given.strip().encode(), self.token.encode())

    # --- login links and sessions --------------------------------------------------------

    def use_link(self, code: str) -> bool:
        """True once for a valid, fresh code; False when forged, expired or used."""
        try:
            nonce = self._links.loads(code, max_age=LINK_SECONDS)
        except (BadSignature, SignatureExpired):
            return False
        now = time.monotonic()
        self._used_links = {n: t for n, t in self._used_links.items()
                            if now - t < LINK_SECONDS}
        if nonce in self._used_links:
            return False
        self._used_links[str(nonce)] = now
        return True

    def new_session(self) -> str:
        return self._sessions.dumps(secrets.token_hex(16))

    def session_id(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        try:
            sid = self._sessions.loads(cookie, max_age=int(self.session_seconds))
        except (BadSignature, SignatureExpired):
            return None
        return str(sid)

    def csrf_for(self, sid: str) -> str:
        return hmac.new(self.token.encode(), b"csrf:" + sid.encode(),
                        hashlib.sha256).hexdigest()

    def csrf_ok(self, sid: str, given: str) -> bool:
        return hmac.compare_digest(self.csrf_for(sid).encode(), given.encode())

    # --- failed attempts -----------------------------------------------------------------

    def limited(self, client: str) -> bool:
        """True when this client already failed too often within the last minute."""
        window = self._failures.get(client)
        if not window:
            return False
        cutoff = time.monotonic() - 60
        while window and window[0] < cutoff:
            window.popleft()
        return len(window) >= self.failures_per_minute

    def failed(self, client: str) -> None:
        self._failures.setdefault(client, deque()).append(time.monotonic())
        if len(self._failures) > 10_000:  # a scan from many addresses: forget the oldest
            self._failures.pop(next(iter(self._failures)))
