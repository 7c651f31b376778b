"""The REST API under /api/v1: JSON in and out, `Authorization: Bearer <token>`.

`{phone}` accepts E.164 with the plus URL-encoded (`%2B5215512345678`) or the digits only.
Errors are JSON `{"error": "<what to fix>"}` with 400 (bad input), 401 (token), 404
(nothing of this business by that number or id), 409 (WhatsApp already linked), 413 (body
too large), 422 (malformed JSON or fields; a pair-code number that is not E.164; a `to`
without its country code), 429 (too many failed logins), 502 (the message was not sent:
nothing changed), 503 (no login offered yet).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from bot.clock import parse_duration
from bot.web.console import BadRequest, Console


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


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def router() -> APIRouter:
    api = APIRouter(prefix="/api/v1", tags=["api"])

    @api.get("/status", summary="Connection, today's numbers, the funnel")
    async def status(request: Request) -> dict[str, Any]:
        c = console_of(request)
        return {"tenant": c.tenant, "connection": c.connection(), "today": await c.today(),
                "funnel": await c.funnel()}

    @api.post("/login/pair-code", summary="Link WhatsApp with a pair code instead of the QR",
              responses={409: {"description": "already linked"},
                         422: {"description": "not an E.164 number"},
                         503: {"description": "WhatsApp has not offered a login yet"}})
    async def pair_code(request: Request, body: PairCodeBody) -> dict[str, Any]:
        return await console_of(request).pair_code(body.phone)

    @api.get("/customers", summary="Customers, most recent contact first")
    async def customers(request: Request,
                        stage: Annotated[str | None, Query()] = None,
                        q: Annotated[str, Query(max_length=100)] = "",
                        offset: Annotated[int, Query(ge=0)] = 0,
                        limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
        items, total = await console_of(request).list_customers(
            stage=stage, q=q, offset=offset, limit=limit)
        return {"items": items, "total": total, "offset": offset, "limit": limit}

    @api.get("/customers/{phone}", summary="One customer: stage, memory, follow-ups")
    async def customer(request: Request, phone: str) -> dict[str, Any]:
        return await console_of(request).customer(phone)

    @api.get("/customers/{phone}/messages", summary="The conversation, oldest first")
    async def messages(request: Request, phone: str,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
        return {"items": await console_of(request).messages(phone, limit)}

    @api.post("/customers/{phone}/pause", summary="Stop the agent answering this customer")
    async def pause(request: Request, phone: str,
                    body: Annotated[PauseBody | None, Body()] = None) -> dict[str, Any]:
        seconds = None
        if body is not None and body.for_:
            try:
                seconds = parse_duration(body.for_).total_seconds()
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
        return await console_of(request).set_pause(phone, seconds)

    @api.post("/customers/{phone}/resume", summary="Let the agent answer again")
    async def resume(request: Request, phone: str) -> dict[str, Any]:
        return await console_of(request).resume(phone)

    @api.post("/messages", summary="Send as the business (pauses the agent, as a takeover)",
              responses={422: {"description": "`to` has no country code or is no number"},
                         502: {"description": "not sent (WhatsApp offline or refused); "
                                              "nothing changed"}})
    async def send(request: Request, body: SendBody) -> dict[str, Any]:
        console = console_of(request)
        return await console.send(await console.recipient(body.to), body.text)

    @api.get("/followups", summary="Pending follow-ups, soonest first")
    async def followups(request: Request) -> dict[str, Any]:
        return {"items": await console_of(request).followups_of()}

    @api.delete("/followups/{fid}", summary="Cancel a pending follow-up")
    async def cancel(request: Request, fid: str) -> dict[str, Any]:
        await console_of(request).cancel_followup(fid)
        return {"cancelled": fid}

    @api.get("/runs/{run_id}", summary="Why did it say that: one turn's model calls")
    async def run(request: Request, run_id: int) -> dict[str, Any]:
        return await console_of(request).run(run_id)

    return api
