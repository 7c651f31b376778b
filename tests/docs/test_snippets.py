"""The Python blocks in the guides run as they are written."""

from __future__ import annotations

import os
from unittest import mock

import pytest

from tests.docs.markdown import pages

SNIPPETS = [(p.name, i, code) for p in pages() for i, code in enumerate(p.blocks("python"))]


def test_the_guides_have_python_to_run() -> None:
    assert len(SNIPPETS) >= 3


@pytest.mark.parametrize(("where", "index", "code"), SNIPPETS,
                         ids=[f"{w}#{i}" for w, i, _ in SNIPPETS])
def test_a_python_block_runs(where: str, index: int, code: str) -> None:
    # In the test's fresh working directory; variables a block sets end with it.
    with mock.patch.dict(os.environ):
        exec(compile(code, f"{where} (python block {index})", "exec"), {"__name__": "docs"})
