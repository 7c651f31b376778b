"""The console's alerts: the page (`/alerts`, its unread count in the menu), marking them
read, and the same under the API (`GET /api/v1/alerts`, `POST /api/v1/alerts/read`).

The alerts are the number's kept ones (`bot.events.alerts.Alerts.kept`): what happened
while the page was closed, and before a restart, is still there until marked read.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from bot.events.alerts import Alerts
from bot.phones import mask
from bot.web import pages
from bot.web.api import Resolve, home_console
from bot.web.console import Console
from bot.web.i18n import Texts


class ReadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[int] | None = Field(None, description="the alerts to mark read; omitted: all")


def api_router(prefix: str = "/api/v1", resolve: Resolve = home_console,
               tag: str = "api") -> APIRouter:
    """The configured number's under /api/v1; with `number_console`, any number's under
    /api/v1/numbers/{key} (as `bot.web.api.router`)."""
    api = APIRouter(prefix=prefix, tags=[tag])
    scoped = Depends(resolve)

    @api.get("/alerts", summary="Owner alerts, newest first, with the unread count")
    async def alerts(unread: bool = False,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                     c: Console = scoped) -> dict[str, Any]:
        a = c.alerts
        items = await a.kept(limit)
        if unread:
            items = [i for i in items if not i["read"]]
        return {"unread": a.unread, "whatsapp": a.where(), "items": items}

    @api.post("/alerts/read", summary="Mark alerts read (all, or the given ids)")
    async def read(body: ReadBody | None = None, c: Console = scoped) -> dict[str, Any]:
        a = c.alerts
        marked = await a.mark_read(body.ids if body is not None else None)
        return {"marked": marked, "unread": a.unread}

    return api


def where(t: Texts, a: Alerts) -> str:
    """`Alerts.where` (what the API says) in the page's language."""
    if not a.s.to_self:
        return t("alerts.where_off")
    if a.s.owner_number:
        to = mask(a.s.owner_number)
        if a.gateway.own_chat:
            return t("alerts.where_owner", to=to)
        if a.template is not None:
            return t("alerts.where_template", to=to, template=a.template.name)
        return t("alerts.where_window", to=to)
    return t("alerts.where_self") if a.gateway.own_chat else t("alerts.where_cloud")


def page_router(prefix: str = "") -> APIRouter:
    """The page of the configured number, and with `prefix` "/n/{key}" any number's; it
    uses the pages' session, CSRF check and renderer (`bot.web.pages`)."""
    page = APIRouter(prefix=prefix, include_in_schema=False)

    @page.get("/alerts")
    async def alerts(request: Request) -> Response:
        s = await pages.session_of(request)
        a = s.console.alerts
        items = await a.kept(a.s.keep)
        return pages.render("alerts.html", request, s=s, items=items, unread=a.unread,
                            where=where(s.t, a))

    @page.post("/alerts/read")
    async def read(request: Request, csrf: Annotated[str, Form()] = "",
                   alert_id: Annotated[int | None, Form()] = None) -> Response:
        s = await pages.session_of(request)
        s.check(csrf)
        await s.console.alerts.mark_read([alert_id] if alert_id is not None else None)
        return RedirectResponse(f"{s.base}/alerts", status_code=303)

    return page
