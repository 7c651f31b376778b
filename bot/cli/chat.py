"""`wabot chat`: the owner plays a customer in the terminal, through the whole pipeline."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from bot.cli.common import app as cli
from bot.cli.common import run_configured, settings_or_exit
from bot.gateway.memory import MemoryGateway
from bot.models import InboundMessage
from bot.settings import Settings

PROMPT = "you> "


async def run_chat(settings: Settings, phone: str, name: str = "") -> None:
    gateway = MemoryGateway()
    from bot.app import App  # the daemon's parts load when a chat starts, not with the CLI

    app = App(settings, gateway, heartbeat=False)  # not the daemon: `status` must not see it
    agent_name = app.unit.business.name

    clear = "\r\x1b[K" if sys.stdout.isatty() else "\r"

    def show(out: object) -> None:
        action = getattr(out, "action", "")
        if action == "text":  # the reply, then the prompt again for the next line
            print(f"{clear}{agent_name}> {getattr(out, 'text', '')}")
            print(PROMPT, end="", flush=True)
        elif action == "composing":
            print(f"{clear}({agent_name} is typing…)", end="", flush=True)

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
                tenant=settings.tenant, phone=phone, msg_id=f"CHAT{int(app.unit.clock.now().timestamp())}-{n}",
                timestamp=app.unit.clock.now(), text=line.rstrip("\n"),
                chat=gateway.chat_for(phone), push_name=name))
    finally:
        print()
        if app.unit.inbox.tasks:
            print(f"(waiting for {agent_name}'s reply in flight…)", flush=True)
            await app.unit.inbox.drain(settings.llm.timeout + 10)
        if app.unit.keeper.tasks:
            print("(memory work under way gets a moment; what is left runs after the next "
                  "turn)", flush=True)
        await app.stop()


def quiet_screen() -> None:
    """The conversation alone on the screen: only warnings and errors are logged to it
    (all of it with -v)."""
    import os

    from bot.cli.common import state
    from bot.ops.logs import setup_logging

    if not state.verbose:
        setup_logging(level="WARNING", json=state.log_json, environ=os.environ)


def _read_line() -> str | None:
    try:
        return input(PROMPT)
    except EOFError:
        return None
    finally:
        sys.stdout.flush()


@cli.command()
def chat(
    as_phone: Annotated[str, typer.Option("--as", help="The customer number to play, E.164.")],
    name: Annotated[str, typer.Option(help="The customer's name as WhatsApp would show it.")] = "",
    fast: Annotated[bool, typer.Option(help="Skip the human-like delays.")] = False,
) -> None:
    """Talk to your own agent in the terminal, as a customer, through the whole pipeline."""
    from bot.cli.resolve import typed_phone

    phone = typed_phone(as_phone)
    settings = settings_or_exit()
    quiet_screen()
    if fast:
        settings.presenter.enabled = False
        settings.inbox.debounce_seconds = 0
    run_configured(run_chat(settings, phone, name))
