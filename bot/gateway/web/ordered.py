"""One ordered consumer for WhatsApp's message events.

neonize (aioze/events.py `Event.execute`) hands each event to the loop with
`run_coroutine_threadsafe` as Go dispatches it and never awaits the result: handlers run
concurrently, so a message whose normalization awaits longer (a LID lookup in Go, a slow
journal write) would overtake the one before it in the same chat. The handler only
enqueues, synchronously, in Go's order; this one task normalizes and dispatches each event
after the previous one has finished. The handler then awaits its own event's outcome, so
a failure is still reported with the handler's context (`goclient.guarded`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

Handle = Callable[[Any, Any], Awaitable[None]]  # (client, event)


class OrderedEvents:
    def __init__(self, handle: Handle) -> None:
        self._handle = handle
        self._queue: asyncio.Queue[tuple[Any, Any, asyncio.Future[None]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def put(self, client: Any, ev: Any) -> asyncio.Future[None]:
        """Queue one event; call it before the handler awaits anything (keeps Go's order).
        The future resolves (or fails) when the event has been handled."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((client, ev, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._consume(), name="whatsapp-events")
        return done

    def __len__(self) -> int:
        return self._queue.qsize()

    async def _consume(self) -> None:
        while True:
            client, ev, done = await self._queue.get()
            try:
                await self._handle(client, ev)
            except Exception as exc:
                if done.done():
                    msg_id = getattr(getattr(ev, "Info", None), "ID", "")
                    logger.opt(exception=True).bind(msg_id=msg_id).error(
                        "a WhatsApp message could not be handled (message id {!r})", msg_id)
                else:
                    done.set_exception(exc)
            else:
                if not done.done():
                    done.set_result(None)
            finally:
                self._queue.task_done()

    async def drain(self, within: float) -> None:
        """Handle what is queued (whatsmeow has acknowledged it), then stop the consumer."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), within)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
