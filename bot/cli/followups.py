"""`wabot followups`: list pending proactive follow-ups, cancel one.

Works on the job table directly (the daemon may be running: it reads the table when a job
is due, so a cancelled follow-up never fires).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Annotated

import typer

from bot.business import local_time
from bot.cli.common import app, fail, require_data, settings_or_exit
from bot.settings import Settings

EXIT_NOT_FOUND = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 69

followups_app = typer.Typer(help="Pending proactive follow-ups: list (default) and cancel.",
                            no_args_is_help=False)
app.add_typer(followups_app, name="followups")

if TYPE_CHECKING:  # imported when used: other commands need not load APScheduler
    from bot.followups import JobTable


@contextmanager
def job_table(settings: Settings) -> Iterator[JobTable]:
    from sqlalchemy.exc import SQLAlchemyError

    from bot.followups import JobTable

    table = JobTable(settings.sql_url, settings.tenant)
    try:
        yield table
    except SQLAlchemyError as exc:
        raise fail(f"the database could not be used: {type(exc).__name__}: {exc}",
                   EXIT_UNAVAILABLE) from None
    finally:
        table.close()


def _sending_time(settings: Settings) -> Callable[[datetime], tuple[datetime, tzinfo]]:
    """When a follow-up due at a time will really go out (moved into the sending hours, as
    the scheduler does when it is due), and the business's timezone to show it in."""
    from bot.business import BusinessError
    from bot.followups.timing import next_slot, sending_hours
    from bot.parts import load_business_for

    try:
        business = load_business_for(settings)
    except (BusinessError, OSError):
        return lambda at: (at, UTC)
    hours = sending_hours(business, settings.followups.send_hours)
    spread = timedelta(0)

    def real(at: datetime) -> tuple[datetime, tzinfo]:
        return next_slot(at, business.tz, hours, spread) or at, business.tz

    return real


def _phone(settings: Settings, text: str) -> str:
    from bot.cli.resolve import customer_key

    return customer_key(settings, text).phone


@followups_app.callback(invoke_without_command=True)
def followups(
    ctx: typer.Context,
    customer: Annotated[str | None, typer.Option(
        "--customer", help="Only this customer's, E.164 (+52 1 55 …).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List pending follow-ups, soonest first: when, who, why."""
    if ctx.invoked_subcommand is not None:
        return
    from bot.followups import followup_id

    settings = settings_or_exit()
    require_data(settings)
    phone = _phone(settings, customer) if customer else None
    sending = _sending_time(settings)
    zone = sending(datetime.now(UTC))[1]
    with job_table(settings) as table:
        found = table.pending(phone, limit) if table.exists() else []
        total = table.count() if table.exists() and phone is None else len(found)
    for fu in found:
        due = fu.run_at or fu.due_at
        real, zone = sending(due)
        at = real.astimezone(zone)
        if as_json:
            typer.echo(json.dumps({"id": followup_id(fu.phone, fu.kind),
                                   "at": at.isoformat(),
                                   "due": due.astimezone(zone).isoformat(), "to": fu.phone,
                                   "kind": fu.kind, "why": fu.reason}, ensure_ascii=False))
        else:
            moved = f" (due {local_time(due, zone)}; sending hours)" if real != due else ""
            typer.echo(f"{local_time(at, zone, '%a %Y-%m-%d %H:%M')}  {fu.phone:<16} "
                       f"{fu.kind:<14} {fu.reason}{moved}\n"
                       f"    id: {followup_id(fu.phone, fu.kind)}")
    if not as_json:
        shown = f" (showing {len(found)})" if total > len(found) else ""
        typer.echo(f"{total} pending follow-up(s){shown}; times in {zone}", err=True)


@followups_app.command("cancel")
def cancel(
    job: Annotated[str, typer.Argument(
        help="An id as `wabot followups` or the API shows it, or +E164 for all of a "
        "customer's.", show_default=False)],
) -> None:
    """Cancel a pending follow-up."""
    from bot.followups import job_id, parse_followup_id

    settings = settings_or_exit()
    require_data(settings, EXIT_NOT_FOUND)
    parsed = parse_followup_id(job, settings.tenant)
    with job_table(settings) as table:
        if not table.exists():
            raise fail("no follow-up was ever scheduled here", EXIT_NOT_FOUND)
        if parsed is not None:
            ids = [job_id(settings.tenant, _phone(settings, parsed[0]), parsed[1])]
        else:
            ids = [fu.job_id for fu in table.pending(_phone(settings, job))]
        removed = table.remove(ids)
    if not removed:
        raise fail(f"no pending follow-up {job}", EXIT_NOT_FOUND)
    typer.echo(f"cancelled {removed} follow-up(s)")
