"""`[http]`, `[webhooks]`, `[alerts]` and `[runlog]` took misspelled keys without a word
(`enable = false`, `prot = 8090`): the owner believed a setting that was never read. Every
section of the settings, found by walking the Settings model rather than listed by hand,
refuses an unknown key and names the closest valid one."""

from __future__ import annotations

from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel

from bot.settings import DEFAULT_RULES, Settings, SettingsError, load_settings


def sections(model: type[BaseModel], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of every section (a field whose type is a model, or a list of them)."""
    found = []
    for name, field in model.model_fields.items():
        inner = field.annotation
        listed = get_origin(inner) is list
        if listed:
            inner = get_args(inner)[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            here = (*path, name, "0") if listed else (*path, name)
            found.append(here)
            found.extend(sections(inner, here))
    return found


def model_at(path: tuple[str, ...]) -> type[BaseModel]:
    model: Any = Settings
    for part in path:
        if part == "0":
            continue
        inner = model.model_fields[part].annotation
        model = get_args(inner)[0] if get_origin(inner) is list else inner
    return model  # type: ignore[no-any-return]


def misspelled(path: tuple[str, ...], key: str) -> dict[str, Any]:
    """The overrides that set `key` in the section at `path` (lists hold one valid item)."""
    value: Any = {key: 1}
    for part in reversed(path):
        value = [{**DEFAULT_RULES[0], **value}] if part == "0" else {part: value}
    return value  # type: ignore[no-any-return]


SECTIONS = sections(Settings)


def test_the_walk_finds_every_section():
    names = {".".join(p) for p in SECTIONS}
    assert {"http", "webhooks", "alerts", "runs", "retry", "voice_budget", "llm",
            "followups.rules.0", "followups.optout"} <= names


@pytest.mark.parametrize("path", SECTIONS, ids=".".join)
def test_every_section_refuses_an_unknown_key_naming_the_closest(path, tmp_path,
                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)  # no config/wabot.toml or .env of the checkout
    first = next(iter(model_at(path).model_fields))
    typo = first[:-1] if len(first) > 3 else first + "s"
    with pytest.raises(SettingsError) as err:
        load_settings(None, **misspelled(path, typo))
    where = ".".join(path)
    assert f"{where}.{typo}: unknown setting" in str(err.value)
    assert f"did you mean {where}.{first}?" in str(err.value)


def test_the_reported_typos(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for section, typo, meant in (("http", "prot", "port"), ("http", "enable", "enabled"),
                                 ("webhooks", "url", "urls"), ("alerts", "to_slef", "to_self"),
                                 ("runs", "enable", "enabled")):
        with pytest.raises(SettingsError, match=f"did you mean {section}.{meant}"):
            load_settings(None, **{section: {typo: 1}})
