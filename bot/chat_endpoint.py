"""The model's `POST /chat/completions`: the call every message makes, over one aiohttp pool.

The openai SDK is the model client: it is built from the settings and it is where this
takes the endpoint's URL, key and headers from (`AsyncOpenAI.base_url`, `.auth_headers`,
`.default_headers`), its timeout and its retry budget. Transcriptions and embeddings go
through the SDK as they are. The chat call alone is posted here, because the SDK's request
pipeline (options copied three times, headers merged and normalized four times, httpx2's
request, auth and redirect layers over the same aiohttp) cost 0.7 ms of CPU a call: a
quarter of a warm message, and the largest single cost left in issue #23's profile.

Retries follow the SDK's rule: a connection error, a timeout, HTTP 408, 409, 429 and 5xx are
retried, with the server's `x-should-retry` obeyed and its `Retry-After` honored up to two
minutes (a longer one ends the retries); otherwise 0.5 s doubling to 8 s, less up to a
quarter at random.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import random
import time
from collections.abc import Mapping

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from loguru import logger
from openai import AsyncOpenAI
from yarl import URL

RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx
RETRY_AFTER_MAX = 120.0  # seconds: a server asking for longer is not retried
BACKOFF_INITIAL, BACKOFF_MAX = 0.5, 8.0
CONNECTIONS = 1000  # to the model at once (the SDK's limit); more calls wait for one


class EndpointError(RuntimeError):
    """The chat call failed after its retries; the message says how, with no secret in it."""


class ChatEndpoint:
    def __init__(self, client: AsyncOpenAI) -> None:
        self.url = str(client.base_url).rstrip("/") + "/chat/completions"
        # What the SDK sends with every request (its `Omit` markers are headers left out),
        # but for the per-attempt ones it counts (x-stainless-retry-count, -read-timeout).
        sent = {**client.default_headers, **client.auth_headers}
        self.headers = {k: v for k, v in sent.items() if isinstance(v, str)}
        self.max_retries = client.max_retries
        seconds = client.timeout
        read = seconds if isinstance(seconds, int | float) else getattr(seconds, "read", None)
        # Connecting and each read are bounded, never the wait for a free connection: a
        # burst queues (issue #23), as the Graph client's calls do.
        self.timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=read,
                                             sock_read=read)
        # HTTP(S)_PROXY and NO_PROXY, read once as the SDK's client does: aiohttp's
        # `trust_env` reads them (and ~/.netrc) again in two thread hops a request, which
        # cost 0.4 ms of CPU a call.
        self.proxy: URL | None = None
        self.proxy_auth: aiohttp.BasicAuth | None = None
        with contextlib.suppress(LookupError):  # none set, or NO_PROXY names the endpoint
            self.proxy, self.proxy_auth = get_env_proxy_for_url(URL(self.url))
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, connector=aiohttp.TCPConnector(limit=CONNECTIONS))
        return self._session

    async def post(self, body: bytes) -> bytes:
        """The answer's body; `EndpointError` when it did not come after the retries."""
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                async with self.session.post(self.url, data=body, headers=self.headers,
                                             proxy=self.proxy,
                                             proxy_auth=self.proxy_auth) as answer:
                    raw = await answer.read()
                    if answer.status < 400:
                        return raw
                    status, headers = answer.status, answer.headers
            except TimeoutError as exc:  # aiohttp's connect and read timeouts are these
                if last:
                    raise EndpointError("the model did not answer in time") from exc
                error, wait = "no answer in time", backoff(attempt)
            except aiohttp.ClientError as exc:
                if last:
                    raise EndpointError(f"the model endpoint failed: {describe(exc)}") from exc
                error, wait = describe(exc), backoff(attempt)
            else:
                after = retry_after(headers)
                if last or not should_retry(status, headers, after):
                    raise EndpointError(f"the model endpoint answered HTTP {status}")
                error = f"HTTP {status}"
                wait = after if after is not None and after > 0 else backoff(attempt)
            logger.warning("the model call failed ({}); retrying in {:.1f} s", error, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def describe(exc: aiohttp.ClientError) -> str:
    """What failed, in words the owner can act on (the console's "why" page shows it):
    where it could not connect, or the kind of error. The host is the endpoint's (or the
    proxy's), never a key."""
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS failed with {exc.host}:{exc.port}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the connection closed before the answer"
    return type(exc).__name__


def should_retry(status: int, headers: Mapping[str, str], after: float | None) -> bool:
    if after is not None and after > RETRY_AFTER_MAX:
        return False
    if (say := headers.get("x-should-retry")) in ("true", "false"):
        return say == "true"
    return status in RETRY_STATUSES or status >= 500


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked to wait (`retry-after-ms`, `retry-after` in seconds or as a
    date), or None."""
    for name, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_tz(headers.get("retry-after", ""))
        return None if when is None else float(email.utils.mktime_tz(when) - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def backoff(attempt: int) -> float:
    return min(BACKOFF_INITIAL * 2.0 ** attempt, BACKOFF_MAX) * (1 - 0.25 * random.random())
