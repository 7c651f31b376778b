"""`wabot init`: set up a business in a few questions, then check it with the doctor."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import app, fail, state

Opt = typer.Option


@app.command()
def init(
    yes: Annotated[bool, Opt("--yes", "-y", help="Take the options and defaults, ask nothing.")] = False,
    name: Annotated[str | None, Opt(help="The business's name.", show_default=False)] = None,
    language: Annotated[str | None, Opt(
        help="The language the business writes in (English, Spanish, …).", show_default=False)] = None,
    timezone: Annotated[str | None, Opt(
        help="IANA timezone (America/Mexico_City); default: this machine's.", show_default=False)] = None,
    hours: Annotated[str | None, Opt(
        help="Opening hours: 'mon-fri 09:00-18:00, sat 10:00-14:00' (other days closed).",
        show_default=False)] = None,
    base_url: Annotated[str | None, Opt(
        help="OpenAI-compatible endpoint; empty: OpenAI.", show_default=False)] = None,
    api_key: Annotated[str | None, Opt(
        help="API key (written to .env, mode 0600); default: $OPENAI_API_KEY.",
        show_default=False)] = None,
    model: Annotated[str | None, Opt(help="Model name.", show_default=False)] = None,
    database_url: Annotated[str | None, Opt(
        help="postgresql://… ; empty: SQLite in ./data.", show_default=False)] = None,
    directory: Annotated[Path, Opt("--dir", help="Where to write config/ and data/.")] = Path("."),
    force: Annotated[bool, Opt("--force", help="Overwrite existing files.")] = False,
    check: Annotated[bool, Opt(help="Run `wabot doctor` at the end.")] = True,
) -> None:
    """Write config/wabot.toml (follow-ups on) and config/business.yaml, then run the doctor.

    Asks for the business name, language, timezone, opening hours, the model endpoint and
    key, and the database; `--yes` takes the options given and the defaults for the rest.
    """
    from bot.ops.setup import Answers, SetupError, local_timezone, write_files

    d = Answers(timezone=local_timezone(), api_key=os.environ.get("OPENAI_API_KEY", ""),
                base_url=os.environ.get("OPENAI_BASE_URL", ""))

    def ask(given: str | None, question: str, default: str, secret: bool = False) -> str:
        if given is not None:
            return given
        if yes:
            return default
        answer: str = typer.prompt(question, default=default, hide_input=secret,
                                   show_default=not secret)
        return answer.strip()

    a = Answers(
        name=ask(name, "Business name", d.name),
        language=ask(language, "Language customers are answered in", d.language),
        timezone=ask(timezone, "Timezone", d.timezone),
        hours=ask(hours, "Opening hours", d.hours),
        base_url=ask(base_url, "Model endpoint (empty: OpenAI; Ollama: "
                     "http://127.0.0.1:11434/v1)", d.base_url),
        api_key=ask(api_key, "API key (empty: none)", d.api_key, secret=True),
        model=ask(model, "Model", d.model),
        database_url=ask(database_url, "Database URL (empty: SQLite in ./data)",
                         d.database_url))
    try:
        written = write_files(directory, a, force=force)
    except SetupError as exc:
        raise fail(str(exc), 2) from None
    for path in written:
        typer.echo(f"wrote {path}")
    if not check:
        return
    typer.echo("")
    os.chdir(directory)
    state.config = None
    from bot.cli.admin import doctor_command

    doctor_command(timeout=10.0)
    typer.echo("\nNext: `wabot chat --as +<your number>` to try the agent, then `wabot run` "
               "and scan the QR code.")
