"""`wabot console` and `wabot runs`: the owner's console from a shell.

`console` prints where the daemon serves the page and a one-time login link (signed with
the console token, valid 10 minutes). `runs` prints a customer's run log: what the model
was shown and did for each reply ("why did it say that").
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Annotated, Any

import typer

from bot.cli.common import app, require_data, settings_or_exit
from bot.cli.memory import PhoneArg, _run, customer_key, local_zone, open_stores, when
from bot.models import CustomerKey
from bot.settings import Settings
from bot.text import for_terminal


@app.command("console")
def console_command() -> None:
    """Print the console's URL and a one-time login link (valid 10 minutes)."""
    from bot.web.auth import ensure_token, login_code
    from bot.web.console_check import console_url

    settings = settings_or_exit()
    if not settings.http.enabled:
        typer.echo("the console is switched off (http.enabled = false)", err=True)
        raise typer.Exit(1)
    url = console_url(settings)
    token = ensure_token(settings)
    typer.echo(f"console   {url}")
    typer.echo(f"log in    {url}/login?code={login_code(token)}")
    typer.echo("          (the link works once, within 10 minutes; `wabot console` again for "
               "a new one)")
    if settings.http.host in ("127.0.0.1", "localhost", "::1") and not settings.http.public_url:
        port = settings.http.port
        typer.echo(f"from your computer: ssh -L {port}:127.0.0.1:{port} <this server>, "
                   "then open the link there")


def tool_results(calls: list[dict[str, Any]], n: int) -> dict[str, str]:
    """What call `n`'s tool calls returned, by call id: the next call's tool messages."""
    following = calls[n + 1]["messages"] if n + 1 < len(calls) else []
    return {str(m.get("tool_call_id")): str(m.get("content") or "") for m in following
            if m.get("role") == "tool"}


def _call_lines(call: dict[str, Any], prompt: bool,
                results: dict[str, str] | None = None) -> list[str]:
    head = (f"  call · {call['model']} · {call['latency_ms']:.0f} ms · "
            f"{call['tokens_in']} in / {call['tokens_out']} out")
    lines = [head, f"    tools offered: {', '.join(call['tools']) or 'none'}"]
    if prompt:
        for m in call["messages"]:
            content = m.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            if m.get("tool_calls"):
                text = (text or "") + " " + json.dumps(m["tool_calls"], ensure_ascii=False)
            lines.append(f"    [{m['role']}] {text}")
    for t in call["tool_calls"]:
        lines.append(f"    → tool {t['name']}({t['arguments']})")
        result = (results or {}).get(str(t.get("id")))
        if result is not None:
            shown = " ".join(result.split())
            lines.append(f"      ← {shown[:300]}{'…' if len(shown) > 300 else ''}")
    if call["error"]:
        lines.append(f"    ✗ {call['error']}")
    elif call["reply"]:
        lines.append(f"    answer: {call['reply']}")
    return lines


async def _runs(settings: Settings, key: CustomerKey, limit: int) -> list[dict[str, Any]]:
    from bot.stores.runs import RunStore

    async with open_stores(settings) as s:
        runs = await RunStore(s.db).export(key)
    return runs[-limit:]


@app.command("runs")
def runs_command(
    phone: PhoneArg,
    limit: Annotated[int, typer.Option(help="The newest N runs.")] = 10,
    prompt: Annotated[bool, typer.Option(help="Also print every prompt message.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON, as GET /api/v1/runs/{id}.")]
    = False,
) -> None:
    """Why did it say that: every model call behind a customer's replies."""
    from datetime import datetime

    settings = settings_or_exit()
    require_data(settings)
    runs = _run(settings, _runs(settings, customer_key(settings, phone), limit))
    if as_json:
        typer.echo(json.dumps(runs, ensure_ascii=False, indent=2))
        return
    if not runs:
        typer.echo(f"no runs recorded for {phone} (kept {settings.runs.retention_days:g} days)")
        return
    zone = local_zone(settings)
    for r in runs:
        at = datetime.fromisoformat(r["at"]).astimezone(UTC)
        state = " · FAILED" if r["failed"] else ""
        typer.echo(f"run {r['id']} · {when(at, zone)} · {r['kind']} · {r['model']} · "
                   f"{r['tokens_in']} in / {r['tokens_out']} out · {r['latency_ms']:.0f} ms"
                   f"{state}")
        for n, call in enumerate(r["calls"]):
            results = tool_results(r["calls"], n)
            for line in _call_lines(call, prompt, results):  # prompts hold what customers wrote
                typer.echo(for_terminal(line))
        typer.echo(for_terminal(f"  reply: {r['reply']}"))
