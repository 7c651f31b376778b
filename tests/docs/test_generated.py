"""The generated pages are what the code says now, and every setting is on the
configuration page."""

from __future__ import annotations

from tests.docs import generate
from tests.docs.markdown import page


def test_the_generated_pages_are_current() -> None:
    stale = [str(path.relative_to(generate.ROOT)) for path, text in generate.pages().items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    assert not stale, f"{stale} are stale: run python -m tests.docs.generate and commit"


def test_every_setting_is_on_the_configuration_page() -> None:
    text = page("docs/configuration.md").text
    missing = [row["key"] for row in generate.settings_rows()
               if f"| `{row['key']}` |" not in text or f"`{row['env']}`" not in text]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"


def test_every_note_of_the_generator_is_a_setting() -> None:
    keys = {row["key"] for row in generate.settings_rows()}
    assert not set(generate.NOTES) - keys, "notes for settings that no longer exist"
