"""Messages that are not text: voice notes are transcribed, images described, the rest noted.

Two hooks into the inbox:
- `describe(msg)` is the inbox's describe hook: the text the agent reads for a non-text
  message in a turn (and stores in history). Voice notes and audio files are downloaded
  (at most `media.max_download_bytes`) and transcribed through the same OpenAI-compatible
  endpoint; images go to `media.vision_model` when one is set; anything else, and any
  failure, becomes a note saying what arrived.
- `filter(msg)` takes the kinds configured "ignore" (kept in history, no reply) or
  "reply:<text>" (kept in history, that reply sent at once, no model call).
"""

from __future__ import annotations

import base64

from loguru import logger

from bot.gateway.base import GatewayError
from bot.llm import LLM, LLMError
from bot.models import InboundMessage, MemoryMessage, MessageKind, Role
from bot.phones import mask
from bot.pipeline.inbox import KIND_NOTES, UNANSWERED_KINDS, Fed, describe_kind
from bot.pipeline.presenter import Presenter
from bot.pipeline.voice_budget import VoiceBudget
from bot.settings import MediaSettings
from bot.stores.customers import Contact, CustomerStore
from bot.stores.memory_base import MemoryStore

NOTES = {
    **KIND_NOTES,
    MessageKind.IMAGE: ("[the customer sent an image, which you cannot see: if it matters, "
                        "ask them to tell you in words what it shows]"),
    MessageKind.VOICE: ("[the customer sent a voice note, which you cannot listen to: if it "
                        "matters, ask them to write it]"),
}
UNHEARD = "[the customer sent a voice note that could not be transcribed: ask them to write it]"
# Over the customer's or the business's transcription budget: no transcription call.
OVER_BUDGET = ("[the customer sent a voice note you cannot listen to today: ask them, kindly, "
               "to type their message instead]")
UNSEEN = ("[the customer sent an image that could not be looked at: if it matters, ask them "
          "to tell you in words what it shows]")
VISION_PROMPT = ("Describe this image for a shop assistant who cannot see it, in two or three "
                 "sentences: what it shows, any product, colour, size, brand or visible text. "
                 "Do not address the customer.")
AUDIO_KINDS = {MessageKind.VOICE, MessageKind.AUDIO}


def note_for(msg: InboundMessage) -> str:
    """What arrived, in words, without downloading anything (caption or details appended)."""
    return describe_kind(msg, NOTES)


async def remember_inbound(customers: CustomerStore, memory: MemoryStore, msg: InboundMessage,
                           text: str) -> None:
    """Count and remember a customer message that no turn will answer."""
    await customers.touch(msg.key, Contact(name=msg.push_name, wa_jid=msg.chat, lid=msg.lid),
                          msg.timestamp, inbound=1)
    await memory.append(msg.key, [MemoryMessage(Role.CUSTOMER, text, msg.timestamp,
                                                msg_id=msg.msg_id)])


async def remember_text(memory: MemoryStore, msg: InboundMessage) -> None:
    """Store a held or capped text message in history now (its turn comes later; the id
    makes the turn's own write a no-op). Other kinds are stored by their turn, described."""
    if msg.kind is MessageKind.TEXT:
        await memory.append(msg.key, [MemoryMessage(Role.CUSTOMER, msg.text, msg.timestamp,
                                                    msg_id=msg.msg_id)])


async def send_now(presenter: Presenter, customers: CustomerStore, msg: InboundMessage,
                   text: str, kind: str) -> bool:
    """Send a fixed text at once, outside any turn (no typing pause: this runs while the
    message is being fed). Returns False when the transport failed."""
    chat = msg.chat or presenter.gateway.chat_for(msg.phone)
    try:
        await presenter.gateway.send_text(chat, text)
    except GatewayError as exc:
        logger.bind(customer=mask(msg.phone)).warning("{} could not be sent: {}", kind, exc)
        return False
    presenter.sent(chat, text, kind)
    await customers.add_usage(msg.key, msgs_out=1)
    return True


def _audio_name(data: bytes) -> str:
    if data[:4] == b"OggS":
        return "voice.ogg"
    if data[4:8] == b"ftyp":
        return "audio.m4a"
    if data[:3] == b"ID3" or data[:2] == b"\xff\xfb":
        return "audio.mp3"
    if data[:4] == b"RIFF":
        return "audio.wav"
    return "voice.ogg"  # WhatsApp voice notes are Ogg/Opus


def _image_type(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] == b"GIF8":
        return "image/gif"
    return "image/jpeg"


class Media:
    def __init__(self, llm: LLM, customers: CustomerStore, memory: MemoryStore,
                 presenter: Presenter, settings: MediaSettings,
                 voice_budget: VoiceBudget | None = None) -> None:
        self.llm = llm
        self.customers = customers
        self.memory = memory
        self.presenter = presenter
        self.s = settings
        self.voice_budget = voice_budget

    def action(self, kind: MessageKind) -> str:
        """transcribe | vision | note | ignore | reply:<text>, for a non-text kind."""
        if kind.value in self.s.kinds:
            return self.s.kinds[kind.value]
        if kind in AUDIO_KINDS:
            return "transcribe" if self.s.transcribe else "note"
        if kind is MessageKind.IMAGE and self.s.vision_model:
            return "vision"
        return self.s.other

    async def filter(self, msg: InboundMessage) -> Fed | None:
        # Returns without awaiting when it lets a message through: the rate limiter
        # before it relies on nothing running between its check and the queueing.
        if msg.from_owner or msg.kind is MessageKind.TEXT or msg.kind in UNANSWERED_KINDS:
            return None
        action = self.action(msg.kind)
        if action == "ignore":
            await remember_inbound(self.customers, self.memory, msg, note_for(msg))
            return Fed.IGNORED
        if action.startswith("reply:"):
            reply = action.removeprefix("reply:").strip()
            await remember_inbound(self.customers, self.memory, msg, note_for(msg))
            if await send_now(self.presenter, self.customers, msg, reply, "auto_reply"):
                await self.memory.append(msg.key, [MemoryMessage(
                    Role.AGENT, reply, msg.timestamp, kind="auto_reply")])
            return Fed.AUTO_REPLIED
        return None

    async def describe(self, msg: InboundMessage) -> str:
        """The turn text for a non-text message; never raises for a media problem."""
        action = self.action(msg.kind)
        if action == "transcribe":
            return await self._transcribe(msg)
        if action == "vision":
            return await self._look(msg)
        return note_for(msg)

    async def _download(self, msg: InboundMessage) -> bytes | None:
        try:
            return await self.presenter.gateway.download(msg, self.s.max_download_bytes)
        except GatewayError as exc:
            logger.bind(customer=mask(msg.phone), msg_id=msg.msg_id).warning(
                "{} not downloaded: {}", msg.kind.value, exc)
            return None

    async def _transcribe(self, msg: InboundMessage) -> str:
        data = await self._download(msg)
        if data is None:
            return UNHEARD
        budget, now = self.voice_budget, self.customers.clock.now()
        seconds = budget.seconds(len(data)) if budget is not None else 0.0
        if budget is not None and not await budget.allows(msg.key, seconds, now):
            logger.bind(customer=mask(msg.phone), msg_id=msg.msg_id).info(
                "voice note not transcribed: over the transcription budget")
            return OVER_BUDGET
        try:
            words = await self.llm.transcribe(data, _audio_name(data),
                                              self.s.transcription_model)
        except LLMError as exc:
            logger.bind(customer=mask(msg.phone), msg_id=msg.msg_id).warning("{}", exc)
            return UNHEARD
        if budget is not None:
            await budget.charge(msg.key, seconds, now)
        label = "[voice note]" if msg.kind is MessageKind.VOICE else "[audio file]"
        if not words:
            return f"{label} (no words could be made out)"
        return f"{label} {words}"

    async def _look(self, msg: InboundMessage) -> str:
        data = await self._download(msg)
        if data is None:
            return f"{UNSEEN} {msg.text}".strip()
        url = f"data:{_image_type(data)};base64,{base64.b64encode(data).decode()}"
        prompt = VISION_PROMPT + (f"\nThe customer's caption: {msg.text}" if msg.text else "")
        try:
            seen = await self.llm.complete([{"role": "user", "content": [
                {"type": "text", "text": prompt},
                {"type": "image_url", "image_url": {"url": url}}]}],
                model=self.s.vision_model)
        except LLMError as exc:
            logger.bind(customer=mask(msg.phone), msg_id=msg.msg_id).warning(
                "image not described: {}", exc)
            return f"{UNSEEN} {msg.text}".strip()
        await self.customers.add_usage(msg.key, tokens_in=seen.tokens_in,
                                       tokens_out=seen.tokens_out)
        caption = f" The customer wrote with it: {msg.text}" if msg.text else ""
        return f"[the customer sent an image; it shows: {seen.text}]{caption}"
