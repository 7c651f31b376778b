"""The REST API over real HTTP on 127.0.0.1: auth, every route, bad input, tenant isolation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.clock import VirtualClock
from bot.models import CustomerKey, Role, Stage
from bot.stores.customers import Contact, CustomerStore
from bot.stores.runs import RunStore
from tests.fakes.pipeline import START
from tests.web.conftest import TOKEN, client


@pytest.fixture
def served(served_by_one_or_two):
    """Every test here runs for a single number and beside a second one (issue #22)."""
    return served_by_one_or_two


ANA = "+5215512345678"
ANA_URL = "%2B5215512345678"
BOB = "+14155550123"


async def test_healthz_and_metrics_need_no_token_the_api_does(served):
    async with client(served, token=None) as anon:
        assert (await anon.get("/healthz")).json()["ok"] is True
        assert (await anon.get("/metrics")).status_code == 200
        missing = await anon.get("/api/v1/status")
        assert missing.status_code == 401
        assert "Bearer" in missing.json()["error"]
    async with client(served, token="wrong") as wrong:
        assert (await wrong.get("/api/v1/status")).status_code == 401
    async with client(served) as ok:
        status = await ok.get("/api/v1/status")
        assert status.status_code == 200
        assert status.json()["tenant"] == served.settings.tenant


async def test_wrong_tokens_are_rate_limited(served):
    limit = served.settings.http.failed_auth_per_minute
    async with client(served, token="guess") as bad:
        codes = [(await bad.get("/api/v1/customers")).status_code for _ in range(limit + 1)]
    assert codes == [401] * limit + [429]
    async with client(served) as ok:  # the right token from the same client still gets in
        assert (await ok.get("/api/v1/customers")).status_code == 200


async def test_openapi_describes_every_route(api):
    paths = (await api.get("/openapi.json")).json()["paths"]
    for path in ("/api/v1/status", "/api/v1/customers", "/api/v1/customers/{phone}",
                 "/api/v1/customers/{phone}/messages", "/api/v1/customers/{phone}/pause",
                 "/api/v1/customers/{phone}/resume", "/api/v1/messages", "/api/v1/followups",
                 "/api/v1/followups/{fid}", "/api/v1/runs/{run_id}"):
        assert path in paths, path


async def test_customers_list_filters_and_pages(served, api):
    await served.say(ANA, "hola")
    await served.say(BOB, "hello")
    await served.settle()
    await served.app.unit.customers.set_stage(CustomerKey(served.settings.tenant, BOB), Stage.CUSTOMER)
    everyone = (await api.get("/api/v1/customers")).json()
    assert everyone["total"] == 2 and {c["phone"] for c in everyone["items"]} == {ANA, BOB}
    leads = (await api.get("/api/v1/customers", params={"stage": "lead"})).json()
    assert [c["phone"] for c in leads["items"]] == [ANA]
    found = (await api.get("/api/v1/customers", params={"q": "55123"})).json()
    assert [c["phone"] for c in found["items"]] == [ANA]
    page = (await api.get("/api/v1/customers", params={"limit": 1, "offset": 1})).json()
    assert page["total"] == 2 and len(page["items"]) == 1
    bad = await api.get("/api/v1/customers", params={"stage": "vip"})
    assert bad.status_code == 400 and "lead" in bad.json()["error"]


async def test_a_customer_by_plus_or_digits_with_memory_and_conversation(served, api):
    await served.say(ANA, "do you have the blue one?")
    await served.settle()
    for ref in (ANA_URL, ANA.removeprefix("+")):
        one = await api.get(f"/api/v1/customers/{ref}")
        assert one.status_code == 200 and one.json()["phone"] == ANA
        assert one.json()["memory"]["summary"] == ""
    lines = (await api.get(f"/api/v1/customers/{ANA_URL}/messages")).json()["items"]
    assert [(m["role"], m["text"]) for m in lines] == [
        ("customer", "do you have the blue one?"), ("agent", "OK: do you have the blue one?")]
    assert lines[0]["run_id"] is None and lines[1]["run_id"] is not None
    run = (await api.get(f"/api/v1/runs/{lines[1]['run_id']}")).json()
    assert run["phone"] == ANA and run["reply"] == "OK: do you have the blue one?"
    call = run["calls"][0]
    assert call["messages"][-1] == {"role": "user", "content": "do you have the blue one?"}
    assert "ask_for_human" in call["tools"] and call["tokens_in"] > 0
    assert call["latency_ms"] >= 0 and call["model"]


async def test_unknown_phone_and_run_are_404_with_a_message(api):
    for path in (f"/api/v1/customers/{ANA_URL}", f"/api/v1/customers/{ANA_URL}/messages",
                 "/api/v1/runs/999999"):
        resp = await api.get(path)
        assert resp.status_code == 404, path
        assert resp.json()["error"].startswith("no ")
    assert (await api.post(f"/api/v1/customers/{ANA_URL}/resume")).status_code == 404
    bad = await api.get("/api/v1/customers/not-a-number")
    assert bad.status_code == 400 and "E.164" in bad.json()["error"]


async def test_pause_with_a_duration_and_resume(served, api):
    await served.say(ANA, "hi")
    await served.settle()
    paused = await api.post(f"/api/v1/customers/{ANA_URL}/pause", json={"for": "2h"})
    assert paused.status_code == 200 and paused.json()["paused"] is True
    customer = await served.app.unit.customers.get(CustomerKey(served.settings.tenant, ANA))
    assert customer.paused_until == served.clock.now() + timedelta(hours=2)
    resumed = await api.post(f"/api/v1/customers/{ANA_URL}/resume")
    assert resumed.json()["paused"] is False
    forever = await api.post(f"/api/v1/customers/{ANA_URL}/pause")  # no body: until resumed
    assert forever.json()["pause"].startswith("off")
    wrong = await api.post(f"/api/v1/customers/{ANA_URL}/pause", json={"for": "soon"})
    assert wrong.status_code == 400 and "30m" in wrong.json()["error"]


async def test_send_as_the_business_goes_out_is_stored_as_owner_and_pauses(served, api):
    await served.say(ANA, "is anyone there?")
    await served.settle()
    sent = await api.post("/api/v1/messages", json={"to": ANA, "text": "Hi Ana, it's Rosa!"})
    assert sent.status_code == 200, sent.text
    assert served.texts_to(ANA)[-1] == "Hi Ana, it's Rosa!"
    key = CustomerKey(served.settings.tenant, ANA)
    history = await served.app.unit.memory.recent(key, 10)
    assert (history[-1].role, history[-1].text) == (Role.OWNER, "Hi Ana, it's Rosa!")
    customer = await served.app.unit.customers.get(key)
    assert customer.paused_until == served.clock.now() + timedelta(hours=12)
    await served.say(ANA, "great, thanks")  # the agent stays quiet: the owner is handling it
    await served.settle()
    assert served.texts_to(ANA)[-1] == "Hi Ana, it's Rosa!"


async def test_followups_listed_and_cancelled(served, api):
    assert served.app.unit.followups is not None
    key = CustomerKey(served.settings.tenant, ANA)
    await served.app.unit.customers.touch(key, Contact(name="Ana"), served.clock.now())
    await served.app.unit.followups.schedule(key, "agent", "ask about the blue one",
                                        served.clock.now() + timedelta(days=1))
    items = (await api.get("/api/v1/followups")).json()["items"]
    assert [(f["phone"], f["kind"]) for f in items] == [(ANA, "agent")]
    assert (await api.delete(f"/api/v1/followups/{items[0]['id']}")).status_code == 200
    assert (await api.get("/api/v1/followups")).json()["items"] == []
    again = await api.delete(f"/api/v1/followups/{items[0]['id']}")
    assert again.status_code == 404


async def test_malformed_json_is_422_and_a_10_mb_body_is_413(api):
    broken = await api.post("/api/v1/messages", content=b'{"to": "+52155',
                            headers={"Content-Type": "application/json"})
    assert broken.status_code == 422 and "invalid request" in broken.json()["error"]
    missing = await api.post("/api/v1/messages", json={"to": ANA})
    assert missing.status_code == 422 and "text" in missing.json()["error"]
    huge = await api.post("/api/v1/messages", content=b"x" * (10 * 1024 * 1024),
                          headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and "max_body_bytes" in huge.json()["error"]

    async def chunks():  # no Content-Length: counted while it streams
        for _ in range(11):
            yield b"x" * (1024 * 1024)

    streamed = await api.post("/api/v1/messages", content=chunks(),
                              headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413


async def test_nothing_of_another_tenant_is_visible(served, api, tenant):
    other = CustomerKey(tenant + "x", BOB)
    store = CustomerStore(served.app.unit.db, VirtualClock(START))
    await store.touch(other, Contact(name="Bob elsewhere"), START, inbound=1)
    run_id = await RunStore(served.app.unit.db).add(
        other, START, "chat", _calls(), "secret reply", False, 0.1)
    assert (await api.get("/api/v1/customers")).json()["total"] == 0
    assert (await api.get("/api/v1/customers", params={"q": "Bob"})).json()["items"] == []
    assert (await api.get(f"/api/v1/customers/{BOB.removeprefix('+')}")).status_code == 404
    assert (await api.get(f"/api/v1/runs/{run_id}")).status_code == 404
    assert (await api.post(f"/api/v1/customers/{BOB}/resume")).status_code == 404
    assert (await api.get("/api/v1/status")).json()["funnel"]["lead"] == 0


def _calls():
    from bot.llm import CallLog

    return CallLog([{"model": "m", "messages": [], "tools": [], "reply": "secret reply",
                     "tool_calls": [], "tokens_in": 1, "tokens_out": 1, "latency_ms": 1.0,
                     "error": ""}])


async def test_the_token_is_compared_exactly(served):
    async with client(served, token=TOKEN + "x") as longer:
        assert (await longer.get("/api/v1/status")).status_code == 401
