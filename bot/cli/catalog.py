"""`wabot catalog import FILE`: products from a spreadsheet into the business profile."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import app, fail, run_configured, settings_or_exit
from bot.settings import Settings

catalog_app = typer.Typer(help="The business profile's products.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="products.csv, .xlsx or .json")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the changes, write nothing.")] = False,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Remove the products the file does not list.")] = False,
) -> None:
    """Import products (columns by header: name, price, currency, description, sku, stock,
    image URL) into the business profile; prints what changes. Matches by SKU, else name."""
    from bot.business import BusinessError, load_business
    from bot.catalog import CatalogError, check_pictures, diff, products_from, write

    if not file.is_file():
        raise fail(f"{file} does not exist", 2)
    settings = settings_or_exit()
    target = settings.business_file or Path("config/business.yaml")
    try:
        current = load_business(target)
        incoming = products_from(file)
        check_pictures(incoming, settings.knowledge.dir)
        changes = diff(current.products, incoming, replace=replace)
    except (CatalogError, BusinessError) as exc:
        raise fail(str(exc), 2) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise fail(f"{file}: cannot be read ({exc})", 2) from None
    for line in changes.lines():
        typer.echo(line)
    if dry_run:
        typer.echo(f"dry run: {target} is unchanged")
        return
    backup = write(target, changes.result)
    typer.echo(f"wrote {target} (the previous version is {backup})")
    _reindex(settings)


def _reindex(settings: Settings) -> None:
    """What the agents search follows the file at once; a running daemon's prompt list of
    products follows on its next re-index (SIGHUP)."""
    from bot.cli.knowledge import with_library

    try:  # the reason, when it fails, is printed by run_configured
        report = run_configured(with_library(settings, lambda lib: lib.sync()))
    except typer.Exit:
        typer.echo("the knowledge index was not rebuilt: run `wabot knowledge reindex` once "
                   "that is fixed", err=True)
        return
    for error in report.errors:
        typer.echo(f"error: {error}", err=True)
    typer.echo(f"re-indexed: {report.summary()}; a running daemon shows the new products "
               "after `systemctl reload wabot` (SIGHUP)")
