"""Every promise on the reliability and security pages names the tests that prove it, and
every test named exists: removing or renaming a proving test fails here."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from tests.docs.markdown import DOCS, page

PAGES = ("docs/reliability.md", "docs/security.md")
TEST_LINK = re.compile(r"\[`(test_\w+)`\]\((\.\./tests/[\w/]+\.py)\)")
PROMISES = re.compile(r"^## What is (?:guaranteed|promised)\n(.*?)(?=^## |\Z)", re.M | re.S)


def promises(name: str) -> list[tuple[str, str]]:
    """(title, text) of each `###` section under the page's promises."""
    section = PROMISES.search(page(name).text)
    assert section, f"{name} has no '## What is guaranteed' or '## What is promised'"
    parts = re.split(r"^### (.+)$", section.group(1), flags=re.M)[1:]
    return list(zip(parts[::2], parts[1::2], strict=True))


@cache
def functions_in(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(node.name for node in ast.walk(tree)
                     if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                     and node.name.startswith("test_"))


ALL = [(name, title, text) for name in PAGES for title, text in promises(name)]


@pytest.mark.parametrize(("name", "title", "text"), ALL, ids=[t[:50] for _, t, _ in ALL])
def test_each_promise_names_the_tests_that_prove_it(name: str, title: str, text: str) -> None:
    links = TEST_LINK.findall(text)
    assert links, f"{name}: the promise '{title}' names no proving test"
    for function, target in links:
        path = (DOCS / target).resolve()
        assert path.is_file(), f"{name}: '{title}' names {target}, which does not exist"
        assert function in functions_in(path), (
            f"{name}: '{title}' names {function} in {target}, which has no such test")


def test_the_pages_hold_promises() -> None:
    assert len(promises("docs/reliability.md")) >= 10
    assert len(promises("docs/security.md")) >= 8
