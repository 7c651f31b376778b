"""A reach-out timelock (send error 463) or a temporary ban: nothing proactive may go out
while it lasts. Before, follow-ups kept firing into the restriction (each one another
strike); now they are moved past its end, not dropped, the owner is told once, and
`wabot status` shows it."""

from __future__ import annotations

from datetime import timedelta

from bot.gateway.restrictions import TIMELOCK
from bot.models import CustomerKey
from bot.ops.status import format_status, read_status
from tests.fakes.pipeline import make_settings, pipeline

ANA = "+5215512345678"


async def test_follow_ups_wait_for_the_restriction_to_end_and_the_owner_is_told(
        tmp_path, openai_server, tenant) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'wabot.db'}", tmp_path, openai_server,
                             tenant, business_file=None)
    async with pipeline(settings) as p:
        await p.say(ANA, "hola")
        await p.settle()
        ends = p.clock.now() + timedelta(hours=5)
        p.app.unit.restrictions.impose(TIMELOCK, ends, "a message was refused with error 463")
        key = CustomerKey(settings.tenant, ANA)
        await p.app.unit.followups.schedule(key, "agent", "checking in",
                                       p.clock.now() + timedelta(seconds=1))
        await p.advance(60)
        assert p.texts_to(ANA) == ["OK: hola"]  # nothing proactive during the timelock
        [later] = [f for f in await p.app.unit.followups.pending(ANA) if f.kind == "agent"]
        assert later.run_at >= ends  # deferred, not lost
        await p.app.unit.alerts.drain()
        assert [a["kind"] for a in p.app.unit.alerts.recent] == ["whatsapp_timelock"]

        shown = format_status(await read_status(p.app.unit.db, settings, p.clock.now()))
        assert "restricted    reach-out timelock (no messages to new contacts) until" in shown

        await p.advance(6 * 3600)
        assert len(p.texts_to(ANA)) == 2  # sent once it was over
        after = format_status(await read_status(p.app.unit.db, settings, p.clock.now()))
        assert "restricted" not in after
