"""The Cloud API sender against the fake Graph API: retries, permanent errors, media, and
the normalization of every webhook message type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from bot.gateway.cloud.events import parse
from bot.gateway.cloud.gateway import CloudGateway
from bot.gateway.cloud.graph import CloudError
from bot.models import InboundMessage, MessageKind
from bot.settings import CloudSettings, SettingsError, load_settings
from tests.fakes import meta_webhooks as meta
from tests.fakes.graph_server import FakeGraph
from tests.fakes.pipeline import START

WA = "5491122334455"


class StepClock:
    """Now stands still; sleeps return at once and are recorded (the backoff)."""

    def __init__(self) -> None:
        self.at = START
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    async def wait(self, tasks: object, within: float) -> set[object]:
        raise NotImplementedError


@pytest.fixture
async def sender(graph_server: FakeGraph) -> AsyncIterator[tuple[CloudGateway, StepClock]]:
    clock = StepClock()
    settings = CloudSettings(phone_number_id=graph_server.phone_number_id,
                             access_token=graph_server.token, graph_url=graph_server.graph_url,
                             backoff_initial=1.0, backoff_cap=3.0, max_retries=4)
    gateway = CloudGateway("t", settings, clock)  # type: ignore[arg-type]
    gateway.on_message(lambda m: _noop())
    await gateway.dispatch(InboundMessage("t", "+" + WA, "wamid.IN1", START, "hola", chat=WA))
    yield gateway, clock
    await gateway.stop()


async def _noop() -> None:
    return None


@pytest.mark.parametrize(("status", "code"), [(429, 0), (500, 0), (503, 0), (400, 130429)])
async def test_throttling_and_server_errors_are_retried_with_backoff(
        sender: tuple[CloudGateway, StepClock], graph_server: FakeGraph, status: int,
        code: int) -> None:
    gateway, clock = sender
    graph_server.fail(status, code, times=3)
    wamid = await gateway.send_text(WA, "hola")
    assert wamid.startswith("wamid.OUT")
    assert len(graph_server.sends()) == 4  # three refusals, then the message
    assert clock.slept == [1.0, 2.0, 3.0]  # doubling, capped


async def test_retries_end_with_the_error_when_meta_keeps_refusing(
        sender: tuple[CloudGateway, StepClock], graph_server: FakeGraph) -> None:
    gateway, clock = sender
    graph_server.fail(500, times=10)
    with pytest.raises(CloudError, match="HTTP 500"):
        await gateway.send_text(WA, "hola")
    assert len(graph_server.sends()) == 5 and len(clock.slept) == 4


@pytest.mark.parametrize(("status", "code"), [(400, 131047), (400, 131026), (401, 190),
                                              (400, 100)])
async def test_permanent_errors_are_not_retried(
        sender: tuple[CloudGateway, StepClock], graph_server: FakeGraph, status: int,
        code: int) -> None:
    gateway, clock = sender
    graph_server.fail(status, code, "Re-engagement message")
    with pytest.raises(CloudError) as raised:
        await gateway.send_text(WA, "hola")
    assert raised.value.code == code and raised.value.status == status
    assert len(graph_server.sends()) == 1 and clock.slept == []


async def test_images_and_documents_are_uploaded_then_sent_by_media_id(
        sender: tuple[CloudGateway, StepClock], graph_server: FakeGraph) -> None:
    gateway, _ = sender
    await gateway.send_image(WA, b"\xff\xd8jpeg", "image/jpeg", caption="Azul",
                             filename="blusa.jpg")
    await gateway.send_document(WA, b"%PDF-1.7", "application/pdf", "catalogo.pdf",
                                caption="Catálogo")
    await gateway.send_media_ref(WA, "image", "https://shop.example/blusa.jpg")
    image, document, linked = (c.body for c in graph_server.sends())
    [(image_id, (image_name, image_type)), (doc_id, (doc_name, _))] = \
        graph_server.uploads.items()
    assert graph_server.media[image_id] == b"\xff\xd8jpeg" and image_type == "image/jpeg"
    assert image_name == "blusa.jpg"
    assert graph_server.media[doc_id] == b"%PDF-1.7" and doc_name == "catalogo.pdf"
    assert image["image"] == {"id": image_id, "caption": "Azul"}
    assert document["document"] == {"id": doc_id, "caption": "Catálogo",
                                    "filename": "catalogo.pdf"}
    assert linked["image"] == {"link": "https://shop.example/blusa.jpg"}
    with pytest.raises(CloudError):
        await gateway.send_media_ref(WA, "video", "x")


async def test_media_outside_the_window_is_not_uploaded(
        sender: tuple[CloudGateway, StepClock], graph_server: FakeGraph) -> None:
    gateway, clock = sender
    clock.at = START + timedelta(hours=30)
    with pytest.raises(CloudError, match="24-hour"):
        await gateway.send_image(WA, b"x", "image/jpeg")
    assert graph_server.calls == [] and graph_server.uploads == {}


async def test_a_customer_never_heard_from_gets_no_free_text(
        sender: tuple[CloudGateway, StepClock], graph_server: FakeGraph) -> None:
    gateway, clock = sender
    with pytest.raises(CloudError, match="24-hour"):
        await gateway.send_text("5215500000000", "hola")
    clock.at = START + timedelta(hours=24, seconds=1)
    with pytest.raises(CloudError, match="24-hour"):
        await gateway.send_text(WA, "hola")
    assert graph_server.sends() == []


async def test_the_token_is_checked_with_the_phone_number_node(
        sender: tuple[CloudGateway, StepClock], graph_server: FakeGraph) -> None:
    gateway, _ = sender
    assert (await gateway.phone_number())["verified_name"] == "Casa Azul"
    graph_server.token = "rotated"
    with pytest.raises(CloudError, match="error 190"):
        await gateway.phone_number()


# --- normalization ---------------------------------------------------------------------

def _one(raw: dict[str, object]) -> InboundMessage:
    events = parse(meta.envelope(messages=[raw], names={WA: "Lucía"}), "t",
                   "106540352242922", START)
    [msg] = events.messages
    assert msg.phone == "+" + WA and msg.chat == WA and msg.push_name == "Lucía"
    return msg


@pytest.mark.parametrize(("raw", "kind", "text", "media"), [
    (meta.message(WA, "text", body="hola"), MessageKind.TEXT, "hola", None),
    (meta.message(WA, "image", id="101", caption="esta"), MessageKind.IMAGE, "esta", "101"),
    (meta.message(WA, "audio", id="102", voice=True), MessageKind.VOICE, "", "102"),
    (meta.message(WA, "audio", id="103"), MessageKind.AUDIO, "", "103"),
    (meta.message(WA, "document", id="104", filename="pedido.pdf"), MessageKind.DOCUMENT,
     "pedido.pdf", "104"),
    (meta.message(WA, "sticker", id="105"), MessageKind.STICKER, "", "105"),
    (meta.message(WA, "interactive", type="button_reply",
                  button_reply={"id": "b2", "title": "Sí, la quiero"}),
     MessageKind.TEXT, "Sí, la quiero", None),
    (meta.message(WA, "interactive", type="list_reply",
                  list_reply={"id": "r1", "title": "Talla M", "description": "…"}),
     MessageKind.TEXT, "Talla M", None),
    (meta.message(WA, "button", text="Ver catálogo", payload="CAT"), MessageKind.TEXT,
     "Ver catálogo", None),
    (meta.message(WA, "reaction", message_id="wamid.OUT1", emoji="❤️"),
     MessageKind.REACTION, "❤️", None),
    (meta.message(WA, "location", latitude=19.43, longitude=-99.13, name="Zócalo",
                  address="Centro, CDMX"), MessageKind.LOCATION,
     "Zócalo, Centro, CDMX (19.43, -99.13)", None),
    (meta.message(WA, "contacts", cards=[{"name": {"formatted_name": "Pedro"},
                                         "phones": [{"phone": "+52 55 1111 2222"}]}]),
     MessageKind.CONTACT, "Pedro +52 55 1111 2222", None),
    (meta.message(WA, "order", order={}), MessageKind.OTHER, "", None),
])
def test_every_message_type_is_normalized(raw: dict[str, object], kind: MessageKind,
                                          text: str, media: str | None) -> None:
    msg = _one(raw)
    assert (msg.kind, msg.text, msg.media) == (kind, text, media)


def test_malformed_and_foreign_changes_are_skipped_not_raised() -> None:
    body = meta.envelope(messages=[{"from": "not-a-number", "id": "x"}, {"id": "no-from"},
                                   "junk", meta.message(WA, "text", "wamid.OK", body="hola")])
    body["entry"].append({"changes": [{"field": "messages", "value": meta.envelope(
        messages=[meta.message(WA, body="otro")], phone_number_id="999")["entry"][0]
        ["changes"][0]["value"]}]})
    events = parse(body, "t", "106540352242922", START)
    assert [m.msg_id for m in events.messages] == ["wamid.OK"] and events.foreign == 1
    with pytest.raises(ValueError, match="JSON object"):
        parse(["not", "an", "object"], "t", "1", START)


# --- settings --------------------------------------------------------------------------

def test_the_cloud_transport_without_its_secrets_fails_naming_each_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WABOT_WHATSAPP__TRANSPORT", "cloud")
    monkeypatch.setenv("WABOT_CLOUD__PHONE_NUMBER_ID", "106540352242922")
    monkeypatch.setenv("WABOT_CLOUD__VERIFY_TOKEN", "v")
    with pytest.raises(SettingsError) as raised:
        load_settings(None)
    message = str(raised.value)
    assert "cloud.access_token" in message and "WABOT_CLOUD__ACCESS_TOKEN" in message
    assert "cloud.app_secret" in message and "cloud.verify_token" not in message
    monkeypatch.setenv("WABOT_CLOUD__ACCESS_TOKEN", "EAAG")
    monkeypatch.setenv("WABOT_CLOUD__APP_SECRET", "s")
    assert load_settings(None).whatsapp.transport == "cloud"


def test_wabot_run_on_the_cloud_transport_without_a_token_exits_78_naming_the_key(
        monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    from typer.testing import CliRunner

    from bot.cli import app

    for name in ("WABOT_CLOUD__ACCESS_TOKEN", "WABOT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WABOT_WHATSAPP__TRANSPORT", "cloud")
    monkeypatch.setenv("WABOT_CLOUD__PHONE_NUMBER_ID", "106540352242922")
    monkeypatch.setenv("WABOT_CLOUD__APP_SECRET", "s")
    monkeypatch.setenv("WABOT_CLOUD__VERIFY_TOKEN", "v")
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 78
    assert "cloud.access_token" in result.output
    assert "WABOT_CLOUD__ACCESS_TOKEN" in result.output


async def test_chats_whose_window_closed_are_forgotten_when_many_are_remembered(
        sender: tuple[CloudGateway, StepClock], monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.gateway.cloud.gateway as cloud

    gateway, clock = sender
    monkeypatch.setattr(cloud, "REMEMBERED_CHATS", 2)
    await gateway.dispatch(InboundMessage("t", "+5215500000001", "a", START, "x",
                                          chat="5215500000001"))
    clock.at = START + timedelta(hours=25)
    await gateway.dispatch(InboundMessage("t", "+5215500000002", "b", clock.at, "x",
                                          chat="5215500000002"))
    assert set(gateway._last_in) == {"+5215500000002"}
    assert await gateway.window_open("+5215500000002")


async def test_a_send_whose_answer_never_came_is_not_sent_again(
        graph_server: FakeGraph) -> None:
    from bot.gateway.base import DeliveryUnknown

    clock = StepClock()
    settings = CloudSettings(phone_number_id=graph_server.phone_number_id,
                             access_token=graph_server.token, graph_url=graph_server.graph_url,
                             timeout=0.3, max_retries=4)
    gateway = CloudGateway("t", settings, clock)  # type: ignore[arg-type]
    gateway.on_message(lambda m: _noop())
    await gateway.dispatch(InboundMessage("t", "+" + WA, "wamid.IN1", START, "hola", chat=WA))
    graph_server.latency = 2.0  # Meta got it, its answer is late
    try:
        with pytest.raises(DeliveryUnknown):
            await gateway.send_text(WA, "hola")
    finally:
        await gateway.stop()
    assert len(graph_server.sends()) == 1 and clock.slept == []
