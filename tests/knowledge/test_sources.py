"""Terms, chunking and reading documents (Markdown, text, PDF)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.knowledge.chunking import chunk_markdown, chunk_text, pack
from bot.knowledge.sources import SourceError, document_docs, document_files
from bot.knowledge.terms import terms
from tests.knowledge.data import pdf_bytes


@pytest.mark.parametrize(("a", "b"), [
    ("zapatos rojos", "Zapato Rojo"), ("camisetas", "Camiseta"), ("devoluciones", "devolución"),
    ("lápices", "lápiz"), ("pantalones", "PANTALÓN"), ("rojas", "rojo"),
    ("shoes", "shoe"), ("dresses", "dress"), ("berries", "berry"), ("boxes", "box"),
    ("policies", "policy"),
])
def test_singular_plural_accent_and_case_share_terms(a: str, b: str) -> None:
    assert terms(a) == terms(b)


def test_distinct_words_keep_distinct_terms() -> None:
    assert terms("rojo") != terms("roto") and terms("bus") == ["bus"]


def test_markdown_chunks_keep_the_heading_path_and_skip_code_fences() -> None:
    chunks = chunk_markdown("# Guide\n\nIntro.\n\n## Sizes\n\nS, M, L.\n\n```\n# not a head\n```"
                            "\n\n### Kids\n\nFrom 2 to 12.\n\n## Care\n\nWash cold.\n")
    assert [(c.title, c.text.splitlines()[0]) for c in chunks] == [
        ("Guide", "Intro."), ("Guide › Sizes", "S, M, L."), ("Guide › Sizes › Kids", "From 2 to 12."),
        ("Guide › Care", "Wash cold.")]


def test_long_paragraphs_are_cut_at_sentences_within_the_limit() -> None:
    para = " ".join(f"Sentence number {i} is here." for i in range(200))
    pieces = pack([para, "short"], max_chars=300)
    assert all(len(p) <= 300 for p in pieces)
    assert pieces[0].startswith("Sentence number 0") and pieces[-1].endswith("short")
    assert chunk_text("a\n\nb") and chunk_text("") == []


def test_pdf_pages_are_chunks_named_by_page(tmp_path: Path) -> None:
    path = tmp_path / "lista.pdf"
    path.write_bytes(pdf_bytes(["Lista de precios 2026", "Envio gratis desde 999 MXN"]))
    docs = document_docs("lista.pdf", path)
    assert [(d.title, d.body) for d in docs] == [
        ("lista.pdf › page 1", "Lista de precios 2026"),
        ("lista.pdf › page 2", "Envio gratis desde 999 MXN")]


def test_a_broken_pdf_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4 this is not a pdf")
    with pytest.raises(SourceError, match=r"broken\.pdf: not a readable PDF"):
        document_docs("broken.pdf", path)


def test_only_documents_outside_hidden_folders_are_listed(tmp_path: Path) -> None:
    for rel in ("a.md", "b.txt", "c.pdf", "d.docx", ".git/e.md", "sub/f.markdown"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    assert sorted(document_files(tmp_path)) == ["a.md", "b.txt", "c.pdf", "sub/f.markdown"]
    assert document_files(tmp_path / "missing") == {}
