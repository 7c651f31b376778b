"""Issue #24 (Low): the doctor called a console on port 8080 "served by the running
daemon" when it belonged to another wabot instance (another tenant, another token). It is
ours now only when it takes this configuration's console token and serves its tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from bot.settings import Settings
from bot.web.console_check import check_console
from tests.fakes.pipeline import Pipeline, make_settings, pipeline

TOKEN = "the-first-instances-console-token"


@pytest.fixture
async def first(tmp_path, openai_server, tenant) -> AsyncIterator[Pipeline]:
    settings = make_settings(f"sqlite:///{tmp_path / 'w.db'}", tmp_path, openai_server, tenant,
                             http={"port": 0, "api_token": TOKEN})
    async with pipeline(settings, serve_http=True) as p:
        yield p


def on_its_port(p: Pipeline, **changes: object) -> Settings:
    """Another configuration pointed at the running console's port."""
    settings = p.app.settings.model_copy(deep=True)
    settings.http.port = p.app.web.port
    for name, value in changes.items():
        if name == "api_token":
            settings.http.api_token = value  # type: ignore[assignment]
        else:
            setattr(settings, name, value)
    return settings


async def test_the_running_console_of_this_configuration_is_ours(first) -> None:
    ok, detail, _ = await check_console(on_its_port(first), 2.0)
    assert ok and "served by the running daemon" in detail


async def test_a_console_refusing_our_token_is_another_instance(first) -> None:
    settings = on_its_port(first, api_token=SecretStr("the-second-instances-token"))
    ok, detail, fix = await check_console(settings, 2.0)
    assert not ok and "served by the running daemon" not in detail
    assert "another wabot instance" in detail and "refuses this configuration's" in detail
    assert "http.port" in fix


async def test_a_console_of_another_tenant_is_another_instance(first) -> None:
    ok, detail, _ = await check_console(on_its_port(first, tenant="panaderia-rosa"), 2.0)
    assert not ok and "another wabot instance" in detail
    assert f"serves tenant {first.app.settings.tenant}, not panaderia-rosa" in detail


async def test_a_configuration_without_a_token_yet_is_not_the_running_one(
        first, tmp_path) -> None:
    settings = on_its_port(first, api_token=None, state_dir=tmp_path / "never-ran")
    ok, detail, _ = await check_console(settings, 2.0)
    assert not ok and "another wabot instance" in detail and "no console token yet" in detail
