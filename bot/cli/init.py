"""`wabot init`: set up a business in a few questions, then check it with the doctor."""

from __future__ import annotations

import os
from collections.abc import Callable
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
    from bot.ops import setup

    try:
        setup.check_free(directory, force=force)
    except setup.SetupError as exc:
        raise fail(str(exc), 2) from None
    d = setup.Answers(timezone=setup.local_timezone(),
                      api_key=os.environ.get("OPENAI_API_KEY", ""),
                      base_url=os.environ.get("OPENAI_BASE_URL", ""))

    def ask(given: str | None, question: str, default: str, secret: bool = False,
            check: Callable[[str], str] = str) -> str:
        """The answer, checked when typed: a wrong one is asked again, the reason shown
        (an option or `--yes` that does not read ends here, exit 2)."""
        answer = given if given is not None else default if yes else None
        while True:
            if answer is None:
                answer = str(typer.prompt(question, default=default, hide_input=secret,
                                          show_default=not secret)).strip()
            try:
                checked = check(answer)
            except setup.SetupError as exc:
                if given is not None or yes:
                    raise fail(str(exc), 2) from None
                typer.echo(f"  {exc}")
                default, answer = exc.suggestion or default, None
                continue
            if checked != answer:
                typer.echo(f"  → {checked}")
            return checked

    business = ask(name, "Business name", d.name, check=setup.check_name)
    lang = ask(language, "Language customers are answered in", d.language)
    a = setup.Answers(
        name=business, language=lang,
        timezone=ask(timezone, "Timezone (a city, a country or America/Mexico_City)",
                     d.timezone, check=setup.check_timezone),
        hours=ask(hours, "Opening hours", d.hours,
                  check=lambda typed: setup.check_hours(typed, lang)),
        base_url=ask(base_url, "Model endpoint (empty: OpenAI; Ollama: "
                     "http://127.0.0.1:11434/v1)", d.base_url),
        api_key=ask(api_key, "API key (empty: none)", d.api_key, secret=True),
        model=ask(model, "Model", d.model),
        database_url=ask(database_url, "Database URL (empty: SQLite in ./data)",
                         d.database_url))
    try:
        written = setup.write_files(directory, a, force=force)
    except setup.SetupError as exc:
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
