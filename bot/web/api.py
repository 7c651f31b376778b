"""The REST API under /api/v1: JSON in and out, `Authorization: Bearer <token>`.

`{phone}` accepts E.164 with the plus URL-encoded (`%2B5215512345678`) or the digits only.
Errors are JSON `{"error": "<what to fix>"}` with 400 (bad input), 401 (token), 404
(nothing of this business by that number or id; no number by that key), 409 (WhatsApp
already linked; the number's node cannot be reached from here), 413 (body too large), 422
(malformed JSON or fields; a pair-code number that is not E.164; a `to` without its country
code), 429 (too many failed logins), 502 (the message was not sent: nothing changed), 503
(no login offered yet; no node serves the number now, or its node did not answer).

Every route is served twice: under /api/v1 for the configured number, and under
/api/v1/numbers/{key} for any number of the fleet (`bot.web.directory`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from bot.clock import parse_duration
from bot.web.console import BadRequest, Console
from bot.web.directory import Consoles
from bot.web.forward import FORWARDED_BY, forward_send


class PauseBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    for_: str | None = Field(None, alias="for", description="30m, 2h, 1d; omitted: until resumed",
                             examples=["2h"])


class SendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(description="The customer's number with its country code (+E164; "
                    "spaces and dashes allowed); digits without one are refused (422)",
                    examples=["+5215512345678"])
    text: str = Field(min_length=1, max_length=4096)


class PairCodeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(description="The business's WhatsApp number, E.164",
                       examples=["+5215512345678"], max_length=32)


def consoles_of(request: Request) -> Consoles:
    consoles: Consoles = request.app.state.consoles
    return consoles


def home_console(request: Request) -> Console:
    """The unscoped routes: the configured number's."""
    return consoles_of(request).home


async def number_console(request: Request, key: Annotated[str, Path(
        description="The number's key, as GET /api/v1/numbers lists it", max_length=64,
        examples=["shop-north"])]) -> Console:
    """The routes under /api/v1/numbers/{key}: that number's (404 when there is none)."""
    return await consoles_of(request).get(key)


Resolve = Callable[..., Console | Awaitable[Console]]


def router(prefix: str = "/api/v1", resolve: Resolve = home_console,
           tag: str = "api") -> APIRouter:
    """Every route of one number: the home's under /api/v1, and the same again under
    /api/v1/numbers/{key} with `number_console`."""
    api = APIRouter(prefix=prefix, tags=[tag])
    scoped = Depends(resolve)  # the number's console

    @api.get("/status", summary="Connection, today's numbers, the funnel")
    async def status(c: Console = scoped) -> dict[str, Any]:
        return {"tenant": c.tenant, "connection": c.connection(), "today": await c.today(),
                "funnel": await c.funnel()}

    @api.post("/login/pair-code", summary="Link WhatsApp with a pair code instead of the QR",
              responses={409: {"description": "already linked"},
                         422: {"description": "not an E.164 number"},
                         503: {"description": "WhatsApp has not offered a login yet"}})
    async def pair_code(body: PairCodeBody, c: Console = scoped) -> dict[str, Any]:
        return await c.pair_code(body.phone)

    @api.get("/customers", summary="Customers, most recent contact first")
    async def customers(stage: Annotated[str | None, Query()] = None,
                        q: Annotated[str, Query(max_length=100)] = "",
                        offset: Annotated[int, Query(ge=0)] = 0,
                        limit: Annotated[int, Query(ge=1, le=500)] = 50,
                        c: Console = scoped) -> dict[str, Any]:
        items, total = await c.list_customers(stage=stage, q=q, offset=offset, limit=limit)
        return {"items": items, "total": total, "offset": offset, "limit": limit}

    @api.get("/customers/{phone}", summary="One customer: stage, memory, follow-ups")
    async def customer(phone: str, c: Console = scoped) -> dict[str, Any]:
        return await c.customer(phone)

    @api.get("/customers/{phone}/messages", summary="The conversation, oldest first")
    async def messages(phone: str, limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                       c: Console = scoped) -> dict[str, Any]:
        return {"items": await c.messages(phone, limit)}

    @api.post("/customers/{phone}/pause", summary="Stop the agent answering this customer")
    async def pause(phone: str, body: Annotated[PauseBody | None, Body()] = None,
                    c: Console = scoped) -> dict[str, Any]:
        seconds = None
        if body is not None and body.for_:
            try:
                seconds = parse_duration(body.for_).total_seconds()
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
        return await c.set_pause(phone, seconds)

    @api.post("/customers/{phone}/resume", summary="Let the agent answer again")
    async def resume(phone: str, c: Console = scoped) -> dict[str, Any]:
        return await c.resume(phone)

    @api.post("/messages", summary="Send as the business (pauses the agent, as a takeover)",
              responses={422: {"description": "`to` has no country code or is no number"},
                         502: {"description": "not sent (WhatsApp offline or refused); "
                                              "nothing changed"},
                         409: {"description": "the number's node has no console reachable "
                                              "from here"},
                         503: {"description": "no node serves the number now, or its node "
                                              "did not answer"}})
    async def send(request: Request, body: SendBody, c: Console = scoped) -> dict[str, Any]:
        consoles = consoles_of(request)
        if not consoles.serving(c.tenant):  # the number's WhatsApp is another node's
            token = request.headers.get("authorization", "").partition(" ")[2]
            return await forward_send(c, body.model_dump(), token=token, node=consoles.node,
                                      forwarded_by=request.headers.get(FORWARDED_BY))
        return await c.send(await c.recipient(body.to), body.text)

    @api.get("/followups", summary="Pending follow-ups, soonest first")
    async def followups(c: Console = scoped) -> dict[str, Any]:
        return {"items": await c.followups_of()}

    @api.delete("/followups/{fid}", summary="Cancel a pending follow-up")
    async def cancel(fid: str, c: Console = scoped) -> dict[str, Any]:
        await c.cancel_followup(fid)
        return {"cancelled": fid}

    @api.get("/runs/{run_id}", summary="Why did it say that: one turn's model calls")
    async def run(run_id: int, c: Console = scoped) -> dict[str, Any]:
        return await c.run(run_id)

    return api
