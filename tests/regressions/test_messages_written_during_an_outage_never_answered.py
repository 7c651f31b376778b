"""Messages written while the model endpoint was down got the failure reply and were
never answered afterwards (issue #16.7). Now, once the model answers again, failed turns
younger than `retry.max_age_hours` are retried, oldest first, with an instruction to
acknowledge the delay (until a turn succeeds:
test_a_recovery_that_is_not_a_recovery_ends_the_retries.py); `wabot status` counts failed
and unanswered messages."""

from __future__ import annotations

from bot.agents.prompt import RULES
from bot.ops.status import format_status, read_status, status_json
from bot.pipeline.later.instructions import AFTER_OUTAGE
from tests.fakes.openai_server import Error, Reply
from tests.fakes.pipeline import START, make_settings, pipeline

ANA = "+5215512345678"
BOB = "+14155550123"
APOLOGY = AFTER_OUTAGE.split("{when}")[0]


class Endpoint:
    """The fake server's answers: down or up."""

    def __init__(self) -> None:
        self.down = True

    def __call__(self, body: dict) -> Reply | Error:
        if self.down:
            return Error(503, "the model is overloaded")
        said = [m["content"] for m in body["messages"] if m["role"] == "user"]
        return Reply("OK: " + " / ".join(said[-2:]))


def turn_requests(server) -> list[dict]:
    return [b for b in server.chat_requests() if RULES in b["messages"][0]["content"]]


def settings_for(db_url, tmp_path, server, tenant, **retry):
    return make_settings(db_url, tmp_path, server, tenant, presenter={"enabled": False},
                         inbox={"debounce_seconds": 0}, retry=retry)


async def test_failed_turns_are_answered_once_the_model_is_back(
        db_url, tmp_path, openai_server, tenant):
    endpoint = openai_server.responder = Endpoint()
    async with pipeline(settings_for(db_url, tmp_path, openai_server, tenant)) as p:
        failure = p.app.settings.agents.failure_reply
        await p.say(ANA, "where is my order?")
        await p.settle()
        await p.advance(30)
        await p.say(BOB, "do you ship to Texas?")
        await p.settle()
        assert p.texts_to(ANA) == [failure] and p.texts_to(BOB) == [failure]
        status = await read_status(p.app.unit.db, p.app.settings, p.clock.now())
        assert (status.failed_today, status.to_retry) == (2, 2)
        assert "2 failed today (2 to retry once the model answers)" in format_status(status)
        assert status_json(status)["turns_to_retry"] == 2
        await p.advance(180)  # still down: the probe fails, nothing is retried
        assert len(turn_requests(openai_server)) == 2
        endpoint.down = False
        await p.advance(60)
        await p.settle()
        assert p.texts_to(ANA) == [failure, "OK: where is my order?"]
        assert p.texts_to(BOB) == [failure, "OK: do you ship to Texas?"]
        retries = turn_requests(openai_server)[2:]
        assert ["where is my order?" in str(r["messages"]) for r in retries] == [True, False]
        assert all(APOLOGY in r["messages"][0]["content"] for r in retries)  # the delay
        assert await p.app.unit.customers.journal_count(tenant, START, "answered") == 2
        status = await read_status(p.app.unit.db, p.app.settings, p.clock.now())
        assert (status.to_retry, status.unanswered) == (0, 0)


async def test_failed_turns_older_than_the_age_are_left_alone(
        db_url, tmp_path, openai_server, tenant):
    endpoint = openai_server.responder = Endpoint()
    settings = settings_for(db_url, tmp_path, openai_server, tenant, max_age_hours=1)
    async with pipeline(settings) as p:
        await p.say(ANA, "hello?")
        await p.settle()
        await p.advance(2 * 3600)
        endpoint.down = False
        await p.advance(60)
        assert len(turn_requests(openai_server)) == 1
        assert p.texts_to(ANA) == [p.app.settings.agents.failure_reply]
