"""Reading the guides as the drift tests need them: files, fenced blocks, inline code, links,
headings and the anchors a code host and MkDocs give them."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

FENCE = re.compile(r"^( *)```(\w*)[^\n]*\n(.*?)^\1```", re.M | re.S)
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6}) +(.+?) *$", re.M)


@dataclass(frozen=True)
class Page:
    path: Path
    text: str

    @property
    def name(self) -> str:
        return str(self.path.relative_to(ROOT))

    def blocks(self, *languages: str) -> list[str]:
        return [m.group(3) for m in FENCE.finditer(self.text)
                if not languages or m.group(2) in languages]

    def prose(self) -> str:
        """The text outside fenced blocks."""
        return FENCE.sub("", self.text)

    def inline_code(self) -> list[str]:
        return INLINE.findall(self.prose())

    def links(self) -> list[str]:
        return [m.group(2) or m.group(3) for m in LINK.finditer(self.prose())]

    def headings(self) -> list[tuple[int, str]]:
        return [(len(m.group(1)), m.group(2)) for m in HEADING.finditer(self.prose())]


def pages() -> list[Page]:
    """The README and every guide."""
    paths = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    return [Page(p, p.read_text(encoding="utf-8")) for p in paths]


def page(name: str) -> Page:
    path = ROOT / name
    return Page(path, path.read_text(encoding="utf-8"))


def _plain(heading: str) -> str:
    """The heading's text as rendered: no backticks, no link syntax."""
    return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")


def mkdocs_slug(heading: str) -> str:
    """Python-Markdown's toc slugify, which MkDocs uses."""
    value = unicodedata.normalize("NFKD", _plain(heading)).encode("ascii", "ignore").decode()
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def github_slug(heading: str) -> str:
    """The anchor a code host gives a heading."""
    value = _plain(heading).strip().lower()
    value = re.sub(r"[^\w\- ]", "", value)
    return value.replace(" ", "-")


def anchors(p: Page) -> set[str]:
    """Anchors present under both MkDocs and a code host (duplicates numbered as both do)."""
    seen: dict[str, int] = {}
    both = set()
    for _, text in p.headings():
        a, b = mkdocs_slug(text), github_slug(text)
        n = seen.get(a, 0)
        seen[a] = n + 1
        if n:
            a, b = f"{a}_{n}", f"{b}-{n}"
        if a == b:
            both.add(a)
    return both
