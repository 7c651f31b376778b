"""Customer-controlled text made safe for where it goes: a database row, a prompt, a terminal.

A customer (or a tampered client) picks every character of a message and of their push
name. Each destination has its own hazard: PostgreSQL refuses NUL in text; a newline in a
push name would start a line of its own in the system prompt; an escape sequence in a
message would drive the owner's terminal when `wabot history` prints it.
"""

from __future__ import annotations

import json
import re
import unicodedata

# ANSI/VT sequences: CSI (ESC [ … final), OSC (ESC ] … BEL or ST), and two-byte ESC forms.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?"
                      r"|\x9b[0-?]*[ -/]*[@-~]|\x9d[^\x07\x9c]*[\x07\x9c]?")
# Letters that draw nothing: Hangul fillers and the braille blank (used to fake empty names).
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def scrub(text: str) -> str:
    """NUL replaced by U+FFFD in everything stored. PostgreSQL text and jsonb refuse NUL;
    replacing it in every backend keeps the contract one contract. No WhatsApp client
    sends NUL, a tampered one or a confused model might."""
    return text.replace("\x00", "\ufffd")


def visible(text: str) -> str:
    """The characters that show: no whitespace, no zero-width or other format characters.

    "\u200b" alone is not whitespace to `str.strip`, yet the customer sent nothing to answer.
    """
    return "".join(ch for ch in text if not (ch.isspace() or ch in _BLANK_LETTERS
                                             or unicodedata.category(ch) == "Cf"))


def _control(ch: str) -> bool:
    # Cc: C0, DEL and C1 controls. Zl/Zp: U+2028/2029 break lines as "\n" does. The bidi
    # embeddings/overrides/isolates reorder what follows them on screen ("Trojan source").
    return (unicodedata.category(ch) in ("Cc", "Zl", "Zp")
            or "\u202a" <= ch <= "\u202e" or "\u2066" <= ch <= "\u2069")


def for_terminal(text: str) -> str:
    """Text as the owner's terminal may print it: escape sequences and control characters
    removed, line breaks and tabs kept (the caller lays out lines)."""
    text = _ESCAPES.sub("", text)
    return "".join(ch for ch in text if ch in "\n\t" or not _control(ch))


def one_line(text: str, cap: int) -> str:
    """Text on one line, at most `cap` characters (an ellipsis marks a cut): control and
    line-breaking characters become spaces, runs of spaces one space."""
    flat = " ".join("".join(" " if _control(ch) else ch for ch in text).split())
    return flat if len(flat) <= cap else flat[: max(cap - 1, 0)].rstrip() + "…"


def quoted(text: str, cap: int) -> str:
    """Customer-provided text for the system prompt: one line, capped, in double quotes with
    inner quotes and backslashes escaped, so it reads as a value, never as instructions."""
    return json.dumps(one_line(text, cap), ensure_ascii=False)
