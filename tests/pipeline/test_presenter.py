"""Human-like delivery: bubbles, typing time, read receipts, presence."""

from __future__ import annotations

import random

from bot.clock import VirtualClock
from bot.gateway.memory import MemoryGateway
from bot.pipeline.presenter import WHATSAPP_MAX_CHARS, Presenter, split_bubbles
from bot.settings import PresenterSettings


def test_paragraphs_become_bubbles():
    assert split_bubbles("Hi Ana!\n\nThe blue one is 1290 MXN.\n\n\nWant it?") == [
        "Hi Ana!", "The blue one is 1290 MXN.", "Want it?"]


def test_a_long_paragraph_splits_at_sentence_ends_and_nothing_is_lost():
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    bubbles = split_bubbles(text, bubble_chars=120, max_bubbles=20)
    assert all(len(b) <= 120 for b in bubbles)
    assert " ".join(bubbles) == text


def test_never_more_than_max_bubbles_and_the_rest_joins_the_last():
    text = "\n\n".join(f"p{i}" for i in range(10))
    bubbles = split_bubbles(text, max_bubbles=3)
    assert bubbles == ["p0", "p1", "\n\n".join(f"p{i}" for i in range(2, 10))]


def test_an_unbroken_giant_is_hard_wrapped():
    bubbles = split_bubbles("x" * (WHATSAPP_MAX_CHARS * 2 + 5))
    assert [len(b) for b in bubbles] == [WHATSAPP_MAX_CHARS, WHATSAPP_MAX_CHARS, 5]


def test_empty_text_makes_no_bubble():
    assert split_bubbles(" \n\n ") == []


def test_typing_time_grows_with_length_within_caps():
    p = Presenter(MemoryGateway(), VirtualClock(), PresenterSettings(jitter=0),
                  random.Random(1))
    assert p.typing_seconds("ok") == 1.0  # the floor
    assert p.typing_seconds("x" * 90) == 90 / 18
    assert p.typing_seconds("x" * 10_000) == 8.0  # the cap


def test_jitter_stays_within_bounds():
    p = Presenter(MemoryGateway(), VirtualClock(), PresenterSettings(jitter=0.2),
                  random.Random(7))
    values = {p.typing_seconds("x" * 90) for _ in range(50)}
    assert len(values) > 1
    assert all(5 * 0.8 <= v <= 5 * 1.2 for v in values)


async def test_delivery_types_then_sends_each_bubble_then_pauses():
    clock = VirtualClock()
    gw = MemoryGateway(clock)
    p = Presenter(gw, clock, PresenterSettings(jitter=0), random.Random(1))
    t0 = clock.now()
    task = __import__("asyncio").create_task(p.deliver("chat", "one\n\ntwo"))
    await clock.wait({task}, 60)
    assert task.result() == 2
    assert [o.action for o in gw.sent] == ["composing", "text", "composing", "text", "paused"]
    first = gw.sent[1].at
    assert first is not None and (first - t0).total_seconds() == 1.0


async def test_disabled_presenter_sends_at_once_without_presence():
    clock = VirtualClock()
    gw = MemoryGateway(clock)
    p = Presenter(gw, clock, PresenterSettings(enabled=False))
    await p.deliver("chat", "hello")
    await p.mark_read("chat", ["A"])
    assert [(o.action, o.at) for o in gw.sent] == [("text", clock.now()), ("read", clock.now())]
