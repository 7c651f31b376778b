"""Meta's Graph API for WhatsApp over aiohttp: one call with retries, sends, media downloads.

Throttling (HTTP 429, Graph errors 4, 80007, 130429) and server errors (5xx, 1, 2, 131000,
131016) are retried with doubling backoff on the injected clock; anything else is Meta's
permanent answer for this call (131047: outside the 24-hour window, 131026: undeliverable,
190: a bad token) and is raised at once as `CloudError` with the Graph code. A connection
that failed before the request left is retried; a POST whose answer never came (a read
timeout, a dropped connection) may have reached Meta and raises `DeliveryUnknown`.

A burst queues: calls wait for one of the pool's connections as long as it takes (issue
#23: a thousand replies at once met httpx's pool timeout and were reported undeliverable).
The timeout bounds connecting and each read, never the wait for a free connection. aiohttp,
as under the model client: one HTTP stack for everything a turn sends out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from loguru import logger

from bot.clock import Clock
from bot.gateway.base import DeliveryUnknown, GatewayError
from bot.gateway.cloud.events import MEDIA_ID
from bot.phones import mask
from bot.settings import CloudSettings

RETRY_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016})
CONNECTIONS = 100  # to Meta at once; more calls wait their turn for one


class CloudError(GatewayError):
    """Meta refused a call; `code` is the Graph error code (0 when there was none)."""

    def __init__(self, message: str, code: int = 0, status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class GraphResponse:
    """A Graph answer, read whole."""

    status: int
    reason: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class GraphAPI:
    def __init__(self, settings: CloudSettings, clock: Clock,
                 client: aiohttp.ClientSession | None = None) -> None:
        self.s = settings
        self.clock = clock
        self._client = client
        token = settings.access_token.get_secret_value() if settings.access_token else ""
        self._headers = {"Authorization": f"Bearer {token}"}

    @property
    def client(self) -> aiohttp.ClientSession:
        if self._client is None:
            timeout = aiohttp.ClientTimeout(total=None, connect=None,
                                            sock_connect=self.s.timeout,
                                            sock_read=self.s.timeout)
            self._client = aiohttp.ClientSession(
                timeout=timeout, connector=aiohttp.TCPConnector(limit=CONNECTIONS))
        return self._client

    @property
    def messages_url(self) -> str:
        return f"{self.s.graph_url}/{self.s.phone_number_id}/messages"

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def call(self, method: str, url: str, **kwargs: Any) -> GraphResponse:
        """One Graph call with retries on throttling and server errors."""
        delay = self.s.backoff_initial
        for attempt in range(self.s.max_retries + 1):
            try:
                async with self.client.request(method, url, headers=self._headers,
                                               **kwargs) as answer:
                    response = GraphResponse(answer.status, answer.reason or "",
                                             await answer.read())
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                error = CloudError(f"{method} {_path(url)}: {type(exc).__name__}: {exc}")
            except (TimeoutError, aiohttp.ClientError) as exc:
                if method != "GET":  # it may have reached Meta: a resend could be a duplicate
                    raise DeliveryUnknown(f"{method} {_path(url)}: {type(exc).__name__}: "
                                          f"{exc}; not sent again") from exc
                error = CloudError(f"{method} {_path(url)}: {type(exc).__name__}: {exc}")
            else:
                if response.status < 400:
                    return response
                error = _graph_error(method, url, response)
                if not (response.status == 429 or response.status >= 500
                        or error.code in RETRY_CODES):
                    raise error
            if attempt == self.s.max_retries:
                raise error
            wait = min(self.s.backoff_cap, delay)
            logger.warning("{}; retrying in {:.1f} s", error, wait)
            await self.clock.sleep(wait)
            delay *= 2
        raise AssertionError("unreachable")

    async def send(self, to: str, kind: str, payload: dict[str, Any]) -> str:
        """Send one message of `kind` (text, template, image…); returns Meta's id."""
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
                "type": kind, kind: payload}
        data = (await self.call("POST", self.messages_url, json=body)).json()
        try:
            return str(data["messages"][0]["id"])
        except (KeyError, IndexError, TypeError) as exc:
            raise CloudError(f"send to {mask('+' + to)}: no message id in {data!r:.200}") from exc

    async def upload(self, data: bytes, mimetype: str, filename: str) -> str:
        """Upload a file for sending; returns its media id (kept by Meta for 30 days)."""
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mimetype)
        form.add_field("file", data, filename=filename or "file", content_type=mimetype)
        response = await self.call(
            "POST", f"{self.s.graph_url}/{self.s.phone_number_id}/media", data=form)
        media_id = str(response.json().get("id") or "")
        if not media_id:
            raise CloudError(f"upload of {filename!r}: no media id in the answer")
        return media_id

    async def download(self, media_id: str, max_bytes: int) -> bytes:
        """A media file: its URL from `GET /{media_id}`, then the bytes, both with the token."""
        if not MEDIA_ID.fullmatch(media_id):  # never a path or a query sent with the token
            raise CloudError(f"refused media id {media_id[:40]!r}: Meta's are digits")
        meta = (await self.call("GET", f"{self.s.graph_url}/{media_id}")).json()
        size = int(meta.get("file_size") or 0)
        if size > max_bytes:
            raise CloudError(f"media of {size} bytes exceeds the {max_bytes}-byte limit")
        url = str(meta.get("url") or "")
        if not url:
            raise CloudError(f"no download URL for media {media_id}")
        data = bytearray()
        try:
            async with self.client.get(url, headers=self._headers) as response:
                if response.status >= 400:
                    raise _graph_error("GET", url, GraphResponse(
                        response.status, response.reason or "", await response.read()))
                async for chunk in response.content.iter_chunked(1 << 16):
                    data += chunk
                    if len(data) > max_bytes:
                        raise CloudError(f"media exceeds the {max_bytes}-byte limit")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise CloudError(f"GET {_path(url)}: {type(exc).__name__}: {exc}") from exc
        return bytes(data)

    async def phone_number(self) -> dict[str, Any]:
        """The number's details; proves the token."""
        response = await self.call("GET", f"{self.s.graph_url}/{self.s.phone_number_id}")
        data: dict[str, Any] = response.json()
        return data


async def display_number(settings: CloudSettings, seconds: float = 5.0) -> tuple[str, str]:
    """The number (E.164) from `GET {graph_url}/{phone_number_id}`'s display_phone_number,
    or "" and why not. One try with a short timeout: `wabot status` must answer when Graph
    does not."""
    from bot.clock import SystemClock

    graph = GraphAPI(settings.model_copy(update={"max_retries": 0, "timeout": seconds}),
                     SystemClock())
    try:
        shown = (await graph.phone_number()).get("display_phone_number")
    except (GatewayError, ValueError) as exc:  # unreachable, a bad token, not JSON
        return "", f"Graph API not reachable ({str(exc)[:160]})"
    finally:
        await graph.close()
    number = e164_of(shown)
    return (number, "") if number else ("", "the Graph API gave no display_phone_number")


def e164_of(display_phone_number: object) -> str:
    """`+1 555-010-0199` (Graph's display form) → `+15550100199`; "" when it has no digits."""
    digits = "".join(ch for ch in str(display_phone_number or "") if ch.isdigit())
    return "+" + digits if digits else ""


def _path(url: str) -> str:
    return urlsplit(url).path


def _graph_error(method: str, url: str, response: GraphResponse) -> CloudError:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    code = int(error.get("code") or 0) if isinstance(error, dict) else 0
    text = str(error.get("message") or response.reason) if isinstance(error, dict) \
        else response.reason
    return CloudError(f"{method} {_path(url)}: HTTP {response.status}"
                      f"{f' error {code}' if code else ''}: {text}"[:400], code,
                      response.status)
