"""The fleet page (`/fleet`): every number of the deployment on one screen — its transport
and state, the node serving it and until when its lease runs, today's messages and model
cost, and its recent alerts — and the number switcher's target (`/switch`).

Read from the shared database, so any node shows the whole fleet. Alerts are kept in the
memory of the node that raised them: counted for the numbers this node runs, "—" for the
others. Times are the business's (the configured number's), labelled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from bot.fleet.roster import Entry, read_roster
from bot.web import times
from bot.web.console import Console
from bot.web.pages import Session, render, session_of

_NUMBER_PATH = re.compile(r"^/n/[^/]+")


@dataclass(frozen=True, slots=True)
class Line:
    """One number as the fleet page shows it."""

    key: str
    base: str  # where its pages are
    transport: str
    state: str
    state_line: str
    owner: str  # the node serving it, "" when none
    here: bool  # served by this node
    lease_until: str  # labelled local time, "" without a held lease
    messages_in: int
    messages_out: int
    cost_usd: float
    alerts: int | None  # None: raised on another node, not known here


def base_of(s: Session, key: str) -> str:
    return "" if key == s.consoles.home.tenant else f"/n/{quote(key, safe='')}"


async def lines(s: Session) -> list[Line]:
    consoles, home = s.consoles, s.consoles.home
    rows = {row.key: row for row in await consoles.rows()}
    roster = await read_roster(home.customers.db, list(rows.values()))
    out = []
    for key in await consoles.keys():
        console = await consoles.get(key)
        row, entry = rows.get(key), roster.get(key)
        here = consoles.serving(key)
        owner = entry.owner or "" if entry is not None and entry.held else ""
        today = await console.stats.today()
        out.append(Line(
            key=key, base=base_of(s, key),
            transport=row.transport if row else console.settings.whatsapp.transport,
            state=_state(console, here, row.state if row else ""),
            state_line=row.state_line if row else "",
            owner=owner or (consoles.node if here else ""),
            here=here, lease_until=_until(home, entry),
            messages_in=today["messages_in"], messages_out=today["messages_out"],
            cost_usd=today["cost_usd"],
            alerts=len(console.alerts.recent) if consoles.runs(key) else None))
    return out


def _state(console: Console, here: bool, stored: str) -> str:
    """Live for a number served here; as its owner last wrote it otherwise."""
    if here:
        return "connected" if console.connection()["connected"] else (stored or "offline")
    return stored or "unknown"


def _until(home: Console, entry: Entry | None) -> str:
    if entry is None or not entry.held or entry.expires_in is None:
        return ""
    return times.shown(home.clock.now() + timedelta(seconds=entry.expires_in), home.zone)


def router() -> APIRouter:
    pages = APIRouter(include_in_schema=False)

    @pages.get("/fleet")
    async def fleet(request: Request) -> Response:
        s = await session_of(request)
        return render("fleet.html", request, s=s, lines=await lines(s),
                      node=s.consoles.node)

    @pages.get("/switch")
    async def switch(request: Request, to: Annotated[str, Query(max_length=64)] = "",
                     from_: Annotated[str, Query(alias="from", max_length=2000)] = "/",
                     ) -> Response:
        """The switcher's form: the same section (today, customers) of number `to`."""
        s = await session_of(request)
        await s.consoles.get(to)  # 404 for a key the fleet does not have
        section = _NUMBER_PATH.sub("", from_)
        section = "/customers" if section.startswith("/customers") else "/"
        return RedirectResponse(base_of(s, to) + section, status_code=303)

    return pages
