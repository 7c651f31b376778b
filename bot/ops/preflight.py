"""What `wabot run` checks before it starts anything: an operator's mistake gets one line
naming the setting and the fix (exit 78), never a traceback; a server that is down gets
one line and exit 1, so systemd retries."""

from __future__ import annotations

import ipaddress
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bot.settings import LLMSettings, Settings


@dataclass(frozen=True, slots=True)
class Problem:
    setting: str
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.what}; fix: {self.fix}"


def is_hosted(base_url: str | None) -> bool:
    """OpenAI itself, or any endpoint that is not on this machine or the local network
    (those always want a key; Ollama, vLLM and LM Studio on a LAN usually do not)."""
    if base_url is None:
        return True
    host = urlsplit(base_url).hostname or ""
    if host == "localhost" or host.endswith((".local", ".lan", ".internal")) or "." not in host:
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return True
    return not (ip.is_loopback or ip.is_private or ip.is_link_local)


# What config/wabot.env.example holds: copied as it is, it is no key (issue #24).
PLACEHOLDER_KEYS = frozenset({"sk-replace-me"})


def api_key_problem(llm: LLMSettings) -> Problem | None:
    if not is_hosted(llm.base_url):
        return None
    where = llm.base_url or "OpenAI"
    if llm.api_key is not None and llm.api_key.get_secret_value().strip() in PLACEHOLDER_KEYS:
        return Problem("llm.api_key (OPENAI_API_KEY)",
                       f"the API key for {where} is the example's placeholder (sk-replace-me)",
                       "put your key in OPENAI_API_KEY (the environment file, e.g. "
                       "/etc/wabot/wabot.env, or .env)")
    if llm.api_key is not None:
        return None
    return Problem("llm.api_key (OPENAI_API_KEY)", f"no API key for {where}",
                   "set OPENAI_API_KEY in the environment or .env (or llm.base_url for a "
                   "local server)")


def state_dir_problem(state_dir: Path) -> Problem | None:
    """Creates the state directory (0700) when missing; checks it can be written."""
    setting = "state_dir (WABOT_STATE_DIR)"
    if state_dir.exists() and not state_dir.is_dir():
        return Problem(setting, f"{state_dir} is a file, not a directory",
                       "point state_dir at a directory, or move the file away")
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return Problem(setting, f"{state_dir} cannot be created ({exc.strerror})",
                       f"create it writable by this user: mkdir -m 700 {state_dir}, or point "
                       "state_dir elsewhere")
    try:
        with tempfile.TemporaryFile(dir=state_dir):
            pass
    except OSError as exc:
        return Problem(setting, f"{state_dir} is not writable ({exc.strerror})",
                       "chown it to the user wabot runs as (chmod u+rwx), or mount it "
                       "read-write")
    return None


def problems(settings: Settings) -> list[Problem]:
    found = [state_dir_problem(settings.state_dir), api_key_problem(settings.llm)]
    return [p for p in found if p is not None]


def start_failure(settings: Settings, exc: BaseException) -> str:
    """One line for a store that failed at start (a server down: systemd retries)."""
    from sqlalchemy.engine import make_url

    message = str(exc).splitlines()[0][:200] if str(exc) else ""
    shown = make_url(settings.sql_url).render_as_string(hide_password=True)
    if settings.mongodb_url is not None and "mongo" in type(exc).__module__:
        return (f"MongoDB unreachable ({type(exc).__name__}: {message}); fix: check mongodb_url "
                "(WABOT_MONGODB_URL) and that mongod runs")
    if _not_the_connection(exc):  # the database answered: what failed is said as it is
        return f"{type(exc).__name__}: {message}"
    return (f"SQL database {shown} unreachable ({type(exc).__name__}: {message}); fix: check "
            "database_url (WABOT_DATABASE_URL) and that the server runs and accepts this user")


def _not_the_connection(exc: BaseException) -> bool:
    """A refusal the database gave, or a check of ours: not a connection or a login."""
    from sqlalchemy.exc import IntegrityError

    return isinstance(exc, (IntegrityError, ValueError))
