"""Linking WhatsApp with a pair code from the console, over real HTTP, against the stand-in
Go layer: the running gateway asks Go for a code for a number typed at runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from neonize.events import ConnectedEv

from bot.clock import VirtualClock
from bot.gateway.web.gateway import NeonizeGateway
from bot.gateway.web.tuning import Tuning
from bot.settings import WhatsAppSettings
from tests.fakes.pipeline import START, Pipeline, pipeline
from tests.gateway.web.builders import StandInClient, StandInFactory
from tests.gateway.web.conftest import reachable  # noqa: F401  (fixture)
from tests.web.conftest import TOKEN, client
from tests.web.test_pages import browser, csrf_of

OWNER = "+5215598765432"


@pytest.fixture
async def linking(console_settings, tmp_path, reachable  # noqa: F811
                  ) -> AsyncIterator[tuple[Pipeline, StandInClient]]:
    clock = VirtualClock(START)
    factory = StandInFactory()
    gateway: Any = NeonizeGateway(
        console_settings.tenant,
        WhatsAppSettings(probe_host=reachable[0], probe_port=reachable[1], call_timeout=2.0),
        clock, state_dir=tmp_path / "wa", tuning=Tuning(client_factory=factory))
    async with pipeline(console_settings, clock=clock, gateway=gateway,
                        serve_http=True) as p:
        yield p, await factory.next_client()


async def test_the_api_gives_a_pair_code_for_a_number_typed_at_runtime(linking):
    p, go = linking
    async with client(p) as api:
        early = await api.post("/api/v1/login/pair-code", json={"phone": OWNER})
        assert early.status_code == 503 and "no QR code shown" in early.json()["error"]
        assert go.called("PairPhone") == []

        await go.show_qr()
        got = await api.post("/api/v1/login/pair-code", json={"phone": OWNER})
        assert got.status_code == 200, got.text
        assert got.json()["pair_code"] == "ABCD-EFGH"
        assert got.json()["phone"] == "+52155****5432"  # masked, as in the logs
        assert [args for args, _ in go.called("PairPhone")] == [("5215598765432", True)]
        status = (await api.get("/api/v1/status")).json()["connection"]
        assert status["pair_code"] == "ABCD-EFGH"
        assert status["status"] == "waiting for pair code ABCD-EFGH to be entered on " \
            "+52155****5432"


async def test_a_bad_number_is_422_and_go_is_not_asked(linking):
    p, go = linking
    await go.show_qr()
    async with client(p) as api:
        for bad in ("5598765432", "+12", "call me"):
            r = await api.post("/api/v1/login/pair-code", json={"phone": bad})
            assert r.status_code == 422, (bad, r.text)
            assert "E.164" in r.json()["error"] or "phone number" in r.json()["error"]
        assert (await api.post("/api/v1/login/pair-code", json={})).status_code == 422
    assert go.called("PairPhone") == []


async def test_already_logged_in_is_409(linking):
    p, go = linking
    await go.show_qr()
    await go.fire(ConnectedEv, ConnectedEv(status=True))
    assert p.gateway.connected.is_set()
    async with client(p) as api:
        r = await api.post("/api/v1/login/pair-code", json={"phone": OWNER})
        assert r.status_code == 409 and "already linked" in r.json()["error"]
        assert (await api.get("/api/v1/status")).json()["connection"]["pair_code"] is None
    assert go.called("PairPhone") == []


async def test_the_page_form_needs_csrf_and_shows_the_code(linking):
    p, go = linking
    await go.show_qr()
    async with browser(p) as b:
        await b.post("/login", data={"token": TOKEN})
        page = await b.get("/")
        assert 'action="/login/pair-code"' in page.text
        forged = await b.post("/login/pair-code", data={"csrf": "0" * 32, "phone": OWNER})
        assert forged.status_code == 403
        assert go.called("PairPhone") == []
        bad = await b.post("/login/pair-code", data={"csrf": csrf_of(page.text),
                                                     "phone": "12"}, follow_redirects=True)
        assert bad.status_code == 422 and "E.164" in bad.text
        shown = await b.post("/login/pair-code", data={"csrf": csrf_of(page.text),
                                                       "phone": OWNER}, follow_redirects=True)
        assert shown.status_code == 200
        assert 'data-testid="pair-code">ABCD-EFGH<' in shown.text
        card = await b.get("/connection")
        assert "Enter the pair code <strong" in card.text and "ABCD-EFGH" in card.text
        assert 'class="qr"' in card.text  # the QR still works meanwhile
