"""`wabot chat`: the owner plays a customer in the terminal, through the whole pipeline."""

from __future__ import annotations

import asyncio
import sys

from bot.app import App
from bot.gateway.memory import MemoryGateway
from bot.models import InboundMessage
from bot.settings import Settings

PROMPT = "you> "


async def run_chat(settings: Settings, phone: str, name: str = "") -> None:
    gateway = MemoryGateway()
    app = App(settings, gateway, heartbeat=False)  # not the daemon: `status` must not see it
    agent_name = app.business.name

    def show(out: object) -> None:
        action = getattr(out, "action", "")
        if action == "text":
            print(f"\r{agent_name}> {getattr(out, 'text', '')}")
        elif action == "composing":
            print(f"\r({agent_name} is typing…)", end="", flush=True)

    gateway.listeners.append(show)
    await app.start()
    print(f"Chatting with {agent_name} as {phone}. Ctrl-D or /quit to leave.")
    n = 0
    try:
        while True:
            line = await asyncio.to_thread(_read_line)
            if line is None or line.strip() == "/quit":
                break
            if not line.strip():
                continue
            n += 1
            await gateway.receive(InboundMessage(
                tenant=settings.tenant, phone=phone, msg_id=f"CHAT{int(app.clock.now().timestamp())}-{n}",
                timestamp=app.clock.now(), text=line.rstrip("\n"),
                chat=gateway.chat_for(phone), push_name=name))
    finally:
        await app.inbox.drain(settings.stop_grace_seconds + 60)
        await app.stop()


def _read_line() -> str | None:
    try:
        return input(PROMPT)
    except EOFError:
        return None
    finally:
        sys.stdout.flush()
