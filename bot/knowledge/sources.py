"""What gets indexed: the catalog (the business profile's products, where `wabot catalog
import` writes them) and the documents in the knowledge folder (Markdown, text, PDF)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from bot.business import Product
from bot.knowledge.chunking import MAX_CHARS, Chunk, chunk_markdown, chunk_pages, chunk_text
from bot.knowledge.index_base import DOCUMENT, PRODUCT, Doc

CATALOG = "catalog"
SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".pdf": "pdf"}
MAX_FILE_BYTES = 64 * 1024 * 1024


class SourceError(ValueError):
    """A document that cannot be read; the message names the file and why."""


def product_facts(p: Product) -> dict[str, object]:
    return {"price": p.price, "currency": p.currency, "stock": p.stock, "sku": p.sku,
            "variants": p.variants, "image": p.image}


def product_doc(p: Product, position: int) -> Doc:
    return Doc(PRODUCT, CATALOG, position, p.name, p.description, product_facts(p),
               keywords=" ".join([p.sku, *p.variants]))


def catalog(products: Sequence[Product]) -> tuple[str, list[Doc]]:
    """The catalog's digest (changes whenever any product does) and its documents."""
    dump = json.dumps([p.model_dump() for p in products], sort_keys=True, default=str)
    return (hashlib.sha256(dump.encode()).hexdigest(),
            [product_doc(p, n) for n, p in enumerate(products)])


def document_files(folder: Path | None) -> dict[str, Path]:
    """Indexable files under the folder, by their path relative to it (`policies/returns.md`);
    hidden files and folders are skipped."""
    if folder is None or not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in SUFFIXES:
            found[rel.as_posix()] = path
    return found


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_pdf_pages(path: Path) -> list[str]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        return [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise SourceError(f"{path.name}: not a readable PDF ({exc})") from exc


def document_docs(rel: str, path: Path, max_chars: int = MAX_CHARS) -> list[Doc]:
    """A document's chunks, in order, each titled with the file and its heading or page."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SourceError(f"{rel}: {size} bytes is over the {MAX_FILE_BYTES}-byte limit")
    kind = SUFFIXES[path.suffix.lower()]
    chunks: list[Chunk]
    if kind == "pdf":
        chunks = chunk_pages(read_pdf_pages(path), max_chars)
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            text = path.read_text(encoding="latin-1")
        chunks = (chunk_markdown if kind == "markdown" else chunk_text)(text, max_chars)
    return [Doc(DOCUMENT, rel, n, f"{rel} › {c.title}" if c.title else rel, c.text,
                {"file": rel, "section": c.title})
            for n, c in enumerate(chunks)]
