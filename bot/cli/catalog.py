"""`wabot catalog import FILE`: products from a spreadsheet into the business profile."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.common import app, fail, run_configured, settings_or_exit, state
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.catalog import Unwritable

EXIT_NOPERM = 77  # EX_NOPERM: this user may not write the profile

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
    from bot.catalog import CatalogError, check_pictures, diff, products_from, write, write_problem

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
    if not dry_run and (blocked := write_problem(target)) is not None:
        typer.echo(f"wabot: {blocked}", err=True)
        typer.echo(f"  fix: {_as_who_can(blocked, file)}", err=True)
        raise typer.Exit(EXIT_NOPERM)
    for line in changes.lines():
        typer.echo(line)
    if dry_run:
        typer.echo(f"dry run: {target} is unchanged")
        return
    try:
        backup = write(target, changes.result)
    except OSError as exc:
        raise fail(f"cannot write the business profile {target} ({exc.strerror or exc}): "
                   "it is unchanged", EXIT_NOPERM) from None
    typer.echo(f"wrote {target} (the previous version is {backup})")
    if (owner := _state_owner(settings)) is not None:
        # Root writing the index would leave root's files in the daemon's state directory.
        typer.echo(f"not re-indexed as root: {settings.state_dir} belongs to {owner}. "
                   "`systemctl reload wabot` (or wabot@NAME) re-indexes in the running "
                   f"daemon; else `sudo -u {owner} wabot knowledge reindex` with the same "
                   "settings")
        return
    _reindex(settings)


def _command(blocked: Unwritable, file: Path) -> str:
    """This import again, as typed from anywhere (sudo drops the environment): the settings
    file and the profile named, the paths whole."""
    import sys

    from bot.settings import DEFAULT_CONFIG

    config = state.config or (Path(os.environ["WABOT_CONFIG"]) if os.environ.get(
        "WABOT_CONFIG") else DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    paths = {"WABOT_CONFIG": os.path.abspath(config)} if config else {}
    paths["WABOT_BUSINESS_FILE"] = str(blocked.profile)
    paths |= {name: os.path.abspath(os.environ[name])
              for name in ("WABOT_STATE_DIR", "WABOT_KNOWLEDGE__DIR") if os.environ.get(name)}
    program = Path(sys.argv[0])
    wabot = str(program.resolve()) if program.name == "wabot" else "wabot"
    return " ".join([
        "env", *(f"{name}={shlex.quote(value)}" for name, value in paths.items()), wabot,
        "catalog", "import", shlex.quote(os.path.abspath(file))])


def _as_who_can(blocked: Unwritable, file: Path) -> str:
    if blocked.owner == "root":  # the service's /etc/wabot
        return (f"import as root: sudo {_command(blocked, file)} (then `sudo systemctl "
                "reload wabot`, or wabot@NAME, re-indexes it in the running daemon)")
    return f"run it as {blocked.owner}: sudo -u {blocked.owner} {_command(blocked, file)}"


def _state_owner(settings: Settings) -> str | None:
    """The state directory's owner when root runs this and it is someone else's."""
    import pwd

    if os.geteuid() != 0 or not settings.state_dir.is_dir():
        return None
    uid = settings.state_dir.stat().st_uid
    if uid == 0:
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


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
