"""Every relative link in the README and the guides leads somewhere (a file, and a heading
when it names one, under both MkDocs' and the code host's anchors), and the site builds with
`mkdocs build --strict`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.markdown import ROOT, anchors, page, pages


def test_every_relative_link_and_anchor_resolves() -> None:
    wrong = []
    for p in pages():
        for link in p.links():
            if link.startswith(("http://", "https://", "mailto:")):
                continue
            target, _, anchor = link.partition("#")
            path = (p.path.parent / target).resolve() if target else p.path
            if not path.exists():
                wrong.append(f"{p.name}: {link} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in anchors(
                    page(str(path.relative_to(ROOT)))):
                wrong.append(f"{p.name}: {link} (no such heading)")
    assert not wrong, "broken links: " + "; ".join(wrong)


def test_every_guide_is_in_the_site() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [p.path.name for p in pages() if p.path.parent.name == "docs"
               and f": {p.path.name}" not in nav]
    assert not missing, f"guides missing from mkdocs.yml's nav: {missing}"


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="pip install -e '.[dev]' installs MkDocs")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, timeout=240,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
