"""The default caps stop floods, never a person: someone writing every 40 s for three hours
is answered every time (regression: 200k tokens a day cut such a customer off after ~110
messages in 75 minutes)."""

from __future__ import annotations

from bot.agents.prompt import RULES
from bot.settings import Settings
from tests.fakes.openai_server import Reply
from tests.fakes.pipeline import make_settings, pipeline

ANA = "+5215512345678"


async def test_a_customer_writing_every_40s_for_3_hours_is_always_answered(
        tmp_path, openai_server, tenant):
    def realistic(body: dict) -> Reply:
        # A long relationship: the whole prompt budget on every turn; memory work too.
        turn = RULES in body["messages"][0]["content"]
        return Reply("OK", usage=(6500, 150) if turn else (4000, 400))

    openai_server.responder = realistic
    settings = make_settings(f"sqlite:///{tmp_path / 'w.db'}", tmp_path, openai_server, tenant)
    defaults = Settings()
    assert settings.limits == defaults.limits  # the defaults, untouched
    messages = 3 * 3600 // 40
    async with pipeline(settings) as p:
        for i in range(messages):
            await p.say(ANA, f"question {i}")
            await p.advance(40)
        await p.settle()
        replies = p.texts_to(ANA)
        limits = p.app.settings.limits
        assert limits.notice not in replies and limits.budget_notice not in replies
        assert replies == ["OK"] * messages
