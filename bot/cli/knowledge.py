"""`wabot knowledge reindex | search`: the owner checks what the agents can find."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from bot.cli.common import app, require_data, run_configured, settings_or_exit
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.knowledge.index_base import Hit
    from bot.knowledge.library import Library

T = TypeVar("T")
knowledge = typer.Typer(help="The catalog and documents the agents search.",
                        no_args_is_help=True)
app.add_typer(knowledge, name="knowledge")


async def with_library(settings: Settings, work: Callable[[Library], Awaitable[T]]) -> T:
    from bot.clock import SystemClock
    from bot.parts import build_library, build_llm
    from bot.stores.db import Database

    db = Database(settings.sql_url)
    llm = build_llm(settings)
    library = build_library(settings, db, SystemClock(), llm, None)
    try:
        await library.start()
        for note in library.index.notes:
            typer.echo(f"note: {note}", err=True)
        return await work(library)
    finally:
        await llm.close()
        await db.close()


@knowledge.command()
def reindex(
    changed: Annotated[bool, typer.Option(
        "--changed", help="Only sources whose content changed (what the daemon does).")] = False,
) -> None:
    """Rebuild the index of the catalog and of the documents folder."""
    settings = settings_or_exit()
    folder = settings.knowledge.dir
    if not folder.is_dir():
        typer.echo(f"no documents folder at {folder} (knowledge.dir): indexing the catalog only")
    report = run_configured(with_library(settings, lambda lib: lib.sync(full=not changed)))
    for error in report.errors:
        typer.echo(f"error: {error}", err=True)
    typer.echo(report.summary())
    if report.errors:
        raise typer.Exit(1)


@knowledge.command()
def search(
    query: Annotated[str, typer.Argument(help="What a customer might ask about.")],
    scope: Annotated[str, typer.Option(help="products, documents or all.")] = "all",
    limit: Annotated[int | None, typer.Option(
        min=1, max=20, help="Results to show (default: knowledge.results).")] = None,
    raw: Annotated[bool, typer.Option("--json", help="Print the tool's JSON as the agent "
                                                     "receives it.")] = False,
) -> None:
    """Search as the agent does and print what it would get."""
    from bot.knowledge.tools import _SCOPES, describe

    settings = settings_or_exit()
    require_data(settings)
    if scope not in _SCOPES:
        raise typer.BadParameter(f"use one of {', '.join(_SCOPES)}", param_hint="--scope")
    count = limit or settings.knowledge.results

    async def look(lib: Library) -> tuple[list[Hit], int]:
        hits = await lib.search(query, _SCOPES[scope], count)
        return hits, 0 if hits else len(await lib.index.sources(lib.tenant))

    hits, indexed = run_configured(with_library(settings, look))
    results = [describe(h) for h in hits]
    if raw:
        typer.echo(json.dumps({"results": results}, ensure_ascii=False, indent=2))
        return
    if not results:
        hint = (f"{indexed} source(s) indexed" if indexed else
                "the index is empty: build it with `wabot knowledge reindex`")
        typer.echo(f"nothing found for {query!r} ({hint})")
        raise typer.Exit(1)
    for n, r in enumerate(results, 1):
        if r["type"] == "product":
            price = f"{r['price']:g} {r['currency']}".strip() if "price" in r else "no price"
            sku = f" [{r['sku']}]" if "sku" in r else ""
            typer.echo(f"{n}. {r['name']}{sku} — {price}, {r['availability']}")
        else:
            where = f"{r['source']} › {r['section']}" if r["section"] else r["source"]
            text = " ".join(r["text"].split())
            typer.echo(f"{n}. {where}\n   {text[:240]}{'…' if len(text) > 240 else ''}")
