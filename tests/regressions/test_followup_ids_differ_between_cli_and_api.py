"""Follow-up ids differed: `wabot followups` listed `followup:default:+52…:lead_silent`,
the API `52…-lead_silent`, and each refused the other's. Both now show one id
(`5215512345678-lead_silent`) and accept either form."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from urllib.parse import quote

import httpx
from typer.testing import CliRunner

from bot.cli import app
from bot.models import CustomerKey
from bot.stores.customers import Contact
from tests.cli.test_web import env, restore_logging  # noqa: F401  (fixtures)
from tests.fakes.pipeline import make_settings, pipeline

ANA = "+5215512345678"
TOKEN = "test-console-token-0123456789"


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_the_cli_and_the_api_show_and_take_one_id(env, tmp_path, db_url, tenant,  # noqa: F811
                                                   openai_server):
    settings = make_settings(db_url, tmp_path / "state", openai_server, tenant,
                             presenter={"enabled": False},
                             http={"port": 0, "api_token": TOKEN})

    async def scenario() -> None:
        async with pipeline(settings, serve_http=True) as p:
            key = CustomerKey(tenant, ANA)
            await p.app.unit.customers.touch(key, Contact(name="Ana"), p.clock.now())
            later = p.clock.now() + timedelta(days=1)
            for kind in ("agent", "lead_silent", "after_purchase"):
                await p.app.unit.followups.schedule(key, kind, f"why {kind}", later)
            async with httpx.AsyncClient(base_url=p.app.web.url, headers={
                    "Authorization": f"Bearer {TOKEN}"}) as api:
                listed = (await api.get("/api/v1/followups")).json()["items"]
                code, out = await asyncio.to_thread(cli, "followups", "--json")
                assert code == 0, out
                shown = [json.loads(line)["id"] for line in out.splitlines()
                         if line.startswith("{")]
                assert sorted(shown) == sorted(f["id"] for f in listed) == [
                    "5215512345678-after_purchase", "5215512345678-agent",
                    "5215512345678-lead_silent"]
                code, out = await asyncio.to_thread(cli, "followups", "cancel",
                                                    "5215512345678-agent")
                assert code == 0 and "cancelled 1" in out, out
                stored = quote(f"followup:{tenant}:{ANA}:lead_silent", safe="")
                assert (await api.delete(f"/api/v1/followups/{stored}")).status_code == 200
                code, out = await asyncio.to_thread(
                    cli, "followups", "cancel", f"followup:{tenant}:{ANA}:after_purchase")
                assert code == 0 and "cancelled 1" in out, out
                assert (await api.get("/api/v1/followups")).json()["items"] == []

    asyncio.run(scenario())
