"""Every setting and `WABOT_*` variable the guides name exists in the settings model, and
every TOML block (the guides' and `config/wabot.example.toml`) has only keys it takes."""

from __future__ import annotations

import re
import tomllib
import typing
from typing import Any

from pydantic import BaseModel

from bot.settings import Settings
from tests.docs.generate import SECTION_LINE
from tests.docs.markdown import ROOT, pages

KEY = re.compile(r"[a-z_]+(\.[a-z_]+)*(\.\*)?")
VARIABLE = re.compile(r"\bWABOT_[A-Z0-9_]*[A-Z0-9]")
# Variables that are not settings, and the file that reads each.
NOT_SETTINGS = {
    "WABOT_CONFIG": "bot/settings.py",
    "WABOT_TEST_POSTGRES_URL": "tests/conftest.py",
    "WABOT_TEST_MONGODB_URL": "tests/conftest.py",
    "WABOT_TEST_MONGODB_REQUIRED": "tests/conftest.py",
    "WABOT_SCREENSHOTS": "tests/web/test_browser.py",
}


def _section(model: type[BaseModel], name: str) -> Any:
    field = model.model_fields.get(name)
    return None if field is None else field.annotation


def resolves(parts: list[str]) -> bool:
    """True when `a.b.c` (or `a.*`) names a setting or a section of the model."""
    model: Any = Settings
    for part in parts:
        if part == "*":
            return isinstance(model, type) and issubclass(model, BaseModel)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return False
        if part not in model.model_fields:
            return False
        model = _section(model, part)
    return True


SECTIONS = {name for name, f in Settings.model_fields.items()
            if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)}


def test_every_key_named_in_the_guides_is_a_setting() -> None:
    wrong = []
    for p in pages():
        for code in p.inline_code():
            named = KEY.fullmatch(code) and "." in code and code.split(".")[0] in SECTIONS
            if named and not resolves(code.split(".")):
                wrong.append(f"{p.name}: `{code}`")
    assert not wrong, "not settings: " + ", ".join(wrong)


def test_every_variable_named_is_a_setting_or_read_by_the_code() -> None:
    wrong = []
    for p in pages():
        for name in set(VARIABLE.findall(p.text)):
            if name in NOT_SETTINGS:
                assert name in (ROOT / NOT_SETTINGS[name]).read_text(), name
                continue
            if not resolves(name.removeprefix("WABOT_").lower().split("__")):
                wrong.append(f"{p.name}: {name}")
    assert not wrong, "variables that are no setting: " + ", ".join(wrong)


def walk(table: dict[str, Any], model: type[BaseModel], where: str) -> list[str]:
    wrong = []
    for key, value in table.items():
        field = model.model_fields.get(key)
        if field is None:
            wrong.append(f"{where}{key}")
        elif isinstance(value, dict) and isinstance(field.annotation, type) \
                and issubclass(field.annotation, BaseModel):
            wrong += walk(value, field.annotation, f"{where}{key}.")
        elif isinstance(value, list) and typing.get_args(field.annotation):
            item = typing.get_args(field.annotation)[0]
            if isinstance(item, type) and issubclass(item, BaseModel):
                for entry in value:
                    wrong += walk(entry, item, f"{where}{key}[].")
    return wrong


def test_every_toml_block_in_the_guides_is_valid_settings() -> None:
    blocks = [(p.name, b) for p in pages() for b in p.blocks("toml")]
    assert blocks
    for name, block in blocks:
        assert not walk(tomllib.loads(block), Settings, ""), f"{name}: unknown keys"


def test_every_key_of_the_example_file_is_a_setting() -> None:
    """Its keys, and those it shows commented out as options."""
    text = (ROOT / "config" / "wabot.example.toml").read_text(encoding="utf-8")
    assert not walk(tomllib.loads(text), Settings, ""), "unknown keys in the example"
    section: str | None = ""
    wrong = []
    for line in text.splitlines():
        if m := SECTION_LINE.match(line.strip()):
            section = None if "[[" in line else m.group(1)  # an array of tables: rules
        elif section is not None and (m := re.match(r"^# ?([a-z_]+) = ", line.strip())):
            key = f"{section}.{m.group(1)}" if section else m.group(1)
            if not resolves(key.split(".")):
                wrong.append(key)
    assert not wrong, f"config/wabot.example.toml names keys that are no setting: {wrong}"
