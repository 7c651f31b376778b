"""Documents into chunks: by heading, then by paragraph, each chunk small enough to quote.

A chunk keeps where it came from (the file, its position, the heading path or page) so a
search result can say "returns.md › Refunds" and the owner can find it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_CHARS = 1200
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True, slots=True)
class Chunk:
    title: str  # heading path ("Shipping › Mexico") or "page 3"
    text: str


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def pack(paragraphs: Iterable[str], max_chars: int = MAX_CHARS) -> list[str]:
    """Consecutive paragraphs joined up to `max_chars`; a longer paragraph is cut at
    sentence ends (or hard, as a last resort)."""
    out: list[str] = []
    current = ""
    for para in paragraphs:
        for piece in _split_long(para, max_chars):
            if current and len(current) + 2 + len(piece) > max_chars:
                out.append(current)
                current = ""
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        out.append(current)
    return out


def _split_long(para: str, max_chars: int) -> list[str]:
    if len(para) <= max_chars:
        return [para]
    pieces: list[str] = []
    current = ""
    for sentence in re.split(r"(?<=[.!?])\s+", para):
        while len(sentence) > max_chars:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
        if current and len(current) + 1 + len(sentence) > max_chars:
            pieces.append(current)
            current = ""
        current = f"{current} {sentence}" if current else sentence
    if current:
        pieces.append(current)
    return pieces


def chunk_markdown(text: str, max_chars: int = MAX_CHARS) -> list[Chunk]:
    """Sections under their heading path; a section's paragraphs packed into chunks."""
    chunks: list[Chunk] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    fence = False

    def flush() -> None:
        title = " › ".join(h for _, h in path)
        chunks.extend(Chunk(title, c) for c in pack(_paragraphs("\n".join(body)), max_chars))
        body.clear()

    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        match = None if fence else _HEADING.match(line)
        if match is None:
            body.append(line)
            continue
        flush()
        level = len(match.group(1))
        path = [(lv, h) for lv, h in path if lv < level] + [(level, match.group(2))]
    flush()
    return chunks


def chunk_text(text: str, max_chars: int = MAX_CHARS) -> list[Chunk]:
    return [Chunk("", c) for c in pack(_paragraphs(text), max_chars)]


def chunk_pages(pages: list[str], max_chars: int = MAX_CHARS) -> list[Chunk]:
    """PDF pages: chunks never span pages, so each result names its page."""
    return [Chunk(f"page {n}", c) for n, page in enumerate(pages, 1)
            for c in pack(_paragraphs(page), max_chars)]
