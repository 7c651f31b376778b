"""Voice notes are transcribed, images described or answered gracefully, other kinds as set."""

from __future__ import annotations

import pytest

from bot.models import CustomerKey, MessageKind, Role
from bot.pipeline.inbox import Fed
from bot.pipeline.media import NOTES, UNHEARD
from tests.fakes.openai_server import Error, Upload
from tests.fakes.pipeline import make_settings, pipeline

ANA = "+5215512345678"
OGG = b"OggS\x00\x02" + b"\x00" * 200  # what a WhatsApp voice note starts with
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100


def user_texts(body: dict) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


def transcriptions(server) -> list:
    return [r for r in server.requests if r.path == "/v1/audio/transcriptions"]


async def history(p, phone):
    return await p.app.unit.memory.recent(CustomerKey(p.settings.tenant, phone), 100)


async def test_a_voice_notes_transcript_is_answered_and_stored(settings, openai_server):
    openai_server.transcript = "do you have the blue one in size 40?"
    async with pipeline(settings) as p:
        voice = p.message(ANA, "", kind=MessageKind.VOICE)
        p.gateway.media[voice.msg_id] = OGG
        assert await p.app.unit.inbox.feed(voice) is Fed.QUEUED
        await p.settle()
        [upload] = transcriptions(openai_server)
        assert upload.body["model"] == "whisper-1"
        assert upload.body["file"] == Upload("voice.ogg", upload.body["file"].content_type, OGG)
        heard = "[voice note] do you have the blue one in size 40?"
        assert user_texts(openai_server.chat_requests()[0]) == [heard]
        assert p.texts_to(ANA) == ["OK: " + heard]
        first = (await history(p, ANA))[0]
        assert (first.role, first.text) == (Role.CUSTOMER, heard)


async def test_a_failed_transcription_becomes_a_note(settings, openai_server):
    openai_server.transcript = Error(500, "whisper is down")
    async with pipeline(settings) as p:
        voice = p.message(ANA, "", kind=MessageKind.VOICE)
        p.gateway.media[voice.msg_id] = OGG
        await p.app.unit.inbox.feed(voice)
        await p.settle()
        assert user_texts(openai_server.chat_requests()[0]) == [UNHEARD]
        assert len(p.texts_to(ANA)) == 1


async def test_a_voice_note_over_the_size_limit_is_not_downloaded_or_sent(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             media={"max_download_bytes": 1024})
    async with pipeline(settings) as p:
        voice = p.message(ANA, "", kind=MessageKind.VOICE)
        p.gateway.media[voice.msg_id] = OGG * 10
        await p.app.unit.inbox.feed(voice)
        await p.settle()
        assert transcriptions(openai_server) == []
        assert user_texts(openai_server.chat_requests()[0]) == [UNHEARD]


async def test_transcription_can_be_switched_off(db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             media={"transcribe": False})
    async with pipeline(settings) as p:
        voice = p.message(ANA, "", kind=MessageKind.VOICE)
        p.gateway.media[voice.msg_id] = OGG
        await p.app.unit.inbox.feed(voice)
        await p.settle()
        assert transcriptions(openai_server) == []
        assert user_texts(openai_server.chat_requests()[0]) == [NOTES[MessageKind.VOICE]]


async def test_an_image_without_a_vision_model_gets_the_graceful_reply(settings, openai_server):
    openai_server.reply("I can't open pictures here: could you tell me which model it is?")
    async with pipeline(settings) as p:
        image = p.message(ANA, "this one in red?", kind=MessageKind.IMAGE)
        p.gateway.media[image.msg_id] = PNG
        await p.app.unit.inbox.feed(image)
        await p.settle()
        [turn] = openai_server.chat_requests()
        assert user_texts(turn) == [NOTES[MessageKind.IMAGE] + " this one in red?"]
        assert "cannot see" in user_texts(turn)[0] and turn["model"] == settings.llm.model
        assert p.texts_to(ANA) == [
            "I can't open pictures here: could you tell me which model it is?"]


async def test_an_image_can_get_a_fixed_reply_without_any_model_call(
        db_url, tmp_path, openai_server, tenant):
    fixed = "Thanks! A person will look at your picture shortly."
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             media={"kinds": {"image": f"reply:{fixed}"}})
    async with pipeline(settings) as p:
        image = p.message(ANA, "this one?", kind=MessageKind.IMAGE)
        assert await p.app.unit.inbox.feed(image) is Fed.AUTO_REPLIED
        await p.settle()
        assert openai_server.requests == []
        assert p.texts_to(ANA) == [fixed]
        lines = [(m.role, m.text) for m in await history(p, ANA)]
        assert lines == [(Role.CUSTOMER, NOTES[MessageKind.IMAGE] + " this one?"),
                         (Role.AGENT, fixed)]


async def test_an_image_goes_to_the_vision_model_when_one_is_set(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             media={"vision_model": "fake-vision"})
    openai_server.reply("Red sneakers, size label 40.", match=lambda b: b["model"] == "fake-vision")
    async with pipeline(settings) as p:
        image = p.message(ANA, "do you have these?", kind=MessageKind.IMAGE)
        p.gateway.media[image.msg_id] = PNG
        await p.app.unit.inbox.feed(image)
        await p.settle()
        look, turn = openai_server.chat_requests()[:2]
        parts = look["messages"][0]["content"]
        assert look["model"] == "fake-vision"
        assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
        assert "do you have these?" in parts[0]["text"]
        assert user_texts(turn) == ["[the customer sent an image; it shows: Red sneakers, size "
                                    "label 40.] The customer wrote with it: do you have these?"]
        used = await p.app.unit.customers.usage_on(CustomerKey(tenant, ANA), "2026-01-05")
        assert used.tokens_in == 20  # the vision call counts towards the customer's budget


async def test_other_kinds_follow_their_configured_action(db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             media={"kinds": {"sticker": "ignore",
                                              "document": "reply:We'll read it and call you."}})
    async with pipeline(settings) as p:
        assert await p.app.unit.inbox.feed(
            p.message(ANA, "", kind=MessageKind.STICKER)) is Fed.IGNORED
        assert await p.app.unit.inbox.feed(
            p.message(ANA, "invoice.pdf", kind=MessageKind.DOCUMENT)) is Fed.AUTO_REPLIED
        assert await p.app.unit.inbox.feed(
            p.message(ANA, "Casa Azul, Calle 5, 19.4,-99.1",
                      kind=MessageKind.LOCATION)) is Fed.QUEUED  # "note" by default
        await p.settle()
        assert p.texts_to(ANA)[0] == "We'll read it and call you."
        [turn] = openai_server.chat_requests()
        assert user_texts(turn)[-1] == ("[the customer shared a location] "
                                        "Casa Azul, Calle 5, 19.4,-99.1")
        kinds = [m.text for m in await history(p, ANA)]
        assert kinds[0] == NOTES[MessageKind.STICKER]  # ignored, but in history
        assert kinds[1].startswith(NOTES[MessageKind.DOCUMENT])


async def test_unknown_media_settings_fail_at_startup(tmp_path, openai_server, tenant):
    from bot.settings import SettingsError

    with pytest.raises(SettingsError, match=r"media\.kinds"):
        make_settings(f"sqlite:///{tmp_path}/x.db", tmp_path, openai_server, tenant,
                      media={"kinds": {"sticker": "shout"}})
