"""Sending as the business for a number another node serves: the send is forwarded to it.

Only the node holding a number's lease may send for it (its WhatsApp connection, its fence):
a console on any other node posts the same request to the owner's console
(`fleet_nodes.console_url`, its `http.public_url` or host and port) at
`/api/v1/numbers/{key}/messages`, with the caller's bearer token (the API) or this node's
token (a page's form: the nodes of one fleet share `http.api_token`), and answers what the
owner answered. Forwarded once: a node that receives a forwarded send for a number it no
longer serves refuses it rather than forward it again.

When that cannot be done nothing is sent, and the error names the owner: 503 while no node
serves the number or its node does not answer, 409 when its node has no console reachable
from here (send from that node's console instead).
"""

from __future__ import annotations

from typing import Any

import httpx
from loguru import logger

from bot.fleet.lease import Leases
from bot.web.console import Console
from bot.web.i18n import Said

FORWARDED_BY = "X-Wabot-Forwarded-By"  # the node that forwarded a send (never forwarded on)
TIMEOUT = 45.0  # the owner's own send waits up to 30 s for WhatsApp


class ServedElsewhere(Said, RuntimeError):
    """The send could not be forwarded to the number's owner: nothing was sent."""

    def __init__(self, status: int, *, key: str, **params: Any) -> None:
        super().__init__(key=key, **params)
        self.status = status


async def owner_of(console: Console) -> tuple[str | None, str]:
    """The node holding the number's lease now and its console URL; (None, "") when none."""
    leases = Leases(console.customers.db, node="console", ttl=0)  # reads only
    lease = await leases.lease(console.tenant)
    if lease is None or lease.owner is None or lease.expires_at <= await leases.now():
        return None, ""
    node = next((n for n in await leases.nodes() if n.node == lease.owner), None)
    return lease.owner, node.console_url if node is not None else ""


async def forward_send(console: Console, body: dict[str, Any], *, token: str, node: str,
                       forwarded_by: str | None = None) -> dict[str, Any]:
    """Post the send to the number's owner; its answer, or `ServedElsewhere`."""
    key = console.tenant
    if forwarded_by:
        raise ServedElsewhere(409, key="forward_moved", by=forwarded_by, node=node,
                              number=key)
    owner, url = await owner_of(console)
    if owner is None:
        raise ServedElsewhere(503, key="forward_none", number=key)
    if not url:
        raise ServedElsewhere(409, key="forward_no_url", number=key, owner=owner)
    target = f"{url.rstrip('/')}/api/v1/numbers/{key}/messages"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            resp = await http.post(target, json=body, headers={
                "Authorization": f"Bearer {token}", FORWARDED_BY: node})
    except httpx.HTTPError as exc:
        logger.warning("send for number {} not forwarded to node {} ({}): {}", key, owner,
                       url, type(exc).__name__)
        raise ServedElsewhere(503, key="forward_silent", number=key, owner=owner, url=url,
                              why=type(exc).__name__) from None
    try:
        answer = resp.json()
    except ValueError:
        answer = {}
    if resp.status_code == 200 and isinstance(answer, dict):
        return dict(answer, node=owner)
    if resp.status_code == 401:
        raise ServedElsewhere(502, key="forward_token", number=key, owner=owner)
    error = answer.get("error") if isinstance(answer, dict) else None
    raise ServedElsewhere(resp.status_code, key="forward_refused", number=key, owner=owner,
                          error=error or resp.text[:200])
