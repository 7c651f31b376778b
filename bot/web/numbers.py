"""`/api/v1/numbers`: the numbers the fleet serves, as `wabot numbers` shows and changes them.

Behind the console's bearer token (`bot.web.server` mounts it with the other API routes).
Errors are `{"error": …}`: 404 no such number, 409 it exists already, 422 input that cannot
be used (a bad key or transport, a secret given as a value, a Cloud API number without its
id, a business file the node cannot read), 400 the number configured as this node's tenant.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from bot.fleet.admin import (
    NewNumber,
    NumberNotFound,
    add_number,
    next_steps,
    notes_for,
    remove_number,
)
from bot.fleet.numbers import NumberError, NumberExists, NumberStore
from bot.fleet.roster import Entry, entry_json, read_roster
from bot.web.console import Console


def _console(request: Request) -> tuple[Console, NumberStore]:
    console: Console = request.app.state.console
    store = console.numbers or NumberStore(console.customers.db, console.clock)
    return console, store


def _error(exc: NumberError, usage: int = 422) -> HTTPException:
    if isinstance(exc, NumberNotFound):
        return HTTPException(404, str(exc))
    if isinstance(exc, NumberExists):
        return HTTPException(409, str(exc))
    return HTTPException(usage, str(exc))


async def _entry(store: NumberStore, key: str) -> Entry:
    row = await store.get(key)
    if row is None:
        raise HTTPException(404, f"no number {key} (GET /api/v1/numbers lists them)")
    return (await read_roster(store.db, [row])).entries[0]


def router() -> APIRouter:
    api = APIRouter(prefix="/api/v1/numbers", tags=["numbers"])

    @api.get("", summary="Every number: state, owner node, seconds left on its lease")
    async def numbers(request: Request) -> dict[str, Any]:
        _, store = _console(request)
        roster = await read_roster(store.db, await store.all())
        return {"items": [entry_json(e) for e in roster.entries]}

    @api.post("", status_code=201, summary="Add a number: every running daemon on the database starts it",
              responses={409: {"description": "a number by that key exists"},
                         422: {"description": "input that cannot be used; secrets are "
                                              "given as environment variable names"}})
    async def add(request: Request, body: NewNumber) -> dict[str, Any]:
        console, store = _console(request)
        try:
            row = await add_number(store, body, console.settings)
        except NumberError as exc:
            raise _error(exc) from None
        if console.numbers_changed is not None:
            console.numbers_changed()
        return dict(entry_json(Entry(row)), next=next_steps(row, console.settings),
                    notes=notes_for(row, console.settings, None))

    @api.get("/{key}", summary="One number: settings (secrets as variable names), owner, "
                               "lease epoch", responses={404: {"description": "no such number"}})
    async def number(request: Request, key: str) -> dict[str, Any]:
        _, store = _console(request)
        return entry_json(await _entry(store, key))

    @api.delete("/{key}", summary="Stop serving a number; its customers' data stays",
                responses={400: {"description": "the number configured as the tenant"},
                           404: {"description": "no such number"}})
    async def remove(request: Request, key: str) -> dict[str, Any]:
        console, store = _console(request)
        try:
            entry = await _entry(store, key)
            await remove_number(store, key, console.settings)
        except NumberError as exc:
            raise _error(exc, usage=400) from None
        if console.numbers_changed is not None:
            console.numbers_changed()
        return {"removed": key, "owner": entry.owner if entry.held else None,
                "note": "the owning node stops the number at its next lease renewal; its "
                        "customers' data stays (erase a customer with `wabot forget`)"}

    return api
