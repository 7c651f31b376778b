"""`/api/v1/numbers` over real HTTP on 127.0.0.1, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.fakes.fleet import forget_rows, hold
from tests.web.conftest import client


@pytest.fixture(autouse=True)
async def cleanup(db_url, tenant):
    yield
    await forget_rows(db_url, tenant)


async def test_the_numbers_routes_need_the_token(served):
    async with client(served, token=None) as anon:
        for method, path in (("GET", "/api/v1/numbers"), ("POST", "/api/v1/numbers"),
                             ("GET", "/api/v1/numbers/x"), ("DELETE", "/api/v1/numbers/x")):
            assert (await anon.request(method, path)).status_code == 401, (method, path)


async def test_add_list_show_and_delete_a_number(served, api, tenant):
    key = f"{tenant}-north"
    made = await api.post("/api/v1/numbers", json={"key": key})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["key"] == key and body["transport"] == "web" and body["state"] == "linking"
    assert body["owner"] is None and body["held"] is False
    assert f"numbers/{key}/login-qr.png" in body["next"]
    listed = (await api.get("/api/v1/numbers")).json()["items"]
    assert [n["key"] for n in listed if n["key"].startswith(tenant)] == [key]
    one = await api.get(f"/api/v1/numbers/{key}")
    assert one.status_code == 200 and one.json()["key"] == key
    gone = await api.delete(f"/api/v1/numbers/{key}")
    assert gone.status_code == 200 and gone.json()["removed"] == key
    assert "wabot forget" in gone.json()["note"]
    assert (await api.get(f"/api/v1/numbers/{key}")).status_code == 404
    assert (await api.delete(f"/api/v1/numbers/{key}")).status_code == 404


async def test_the_owner_and_its_lease_are_listed(served, api, tenant, db_url):
    key, node = f"{tenant}-held", f"{tenant}-node-b"
    assert (await api.post("/api/v1/numbers", json={"key": key})).status_code == 201
    lease = await hold(db_url, key, node, ttl=30)
    [item] = [n for n in (await api.get("/api/v1/numbers")).json()["items"] if n["key"] == key]
    assert item["owner"] == node and item["held"] is True and item["epoch"] == lease.epoch
    assert 25 <= item["lease_expires_in"] <= 30
    assert item["owner_console"] == f"http://{node}.example:8080"
    removed = (await api.delete(f"/api/v1/numbers/{key}")).json()
    assert removed["owner"] == node


async def test_a_cloud_number_stores_variable_names_never_secrets(api, tenant):
    key = f"{tenant}-cloud"
    made = await api.post("/api/v1/numbers", json={
        "key": key, "transport": "cloud", "phone_number_id": "998877",
        "access_token_env": "SHOP3_TOKEN"})
    assert made.status_code == 201, made.text
    assert made.json()["settings"] == {"cloud": {"phone_number_id": "998877",
                                                 "access_token_env": "SHOP3_TOKEN"}}
    assert "/webhooks/whatsapp" in made.json()["next"]
    raw = await api.post("/api/v1/numbers", json={
        "key": f"{tenant}-raw", "transport": "cloud", "phone_number_id": "1",
        "access_token": "EAAG-secret"})
    assert raw.status_code == 422
    assert "access_token is a secret" in raw.json()["error"]
    assert "EAAG-secret" not in raw.text
    assert (await api.get(f"/api/v1/numbers/{tenant}-raw")).status_code == 404


@pytest.mark.parametrize(("body", "says"), [
    ({"key": "no spaces"}, "is not a number key"),
    ({"key": "{t}-x", "transport": "sms"}, "use web"),
    ({"key": "{t}-x", "transport": "cloud"}, "phone_number_id"),
    ({"key": "{t}-x", "phone_number_id": "12"}, "use transport cloud"),
    ({"key": "{t}-x", "transport": "cloud", "phone_number_id": "1",
      "app_secret_env": "not a name"}, "must name an environment variable"),
    ({"key": "{t}-x", "business_file": "/nowhere/shop.yaml"}, "does not exist"),
    ({"key": "{t}-x", "colour": "blue"}, "colour"),
    ({}, "key"),
])
async def test_bad_input_is_422_with_what_to_fix(api, tenant, body, says):
    sent = {k: v.format(t=tenant) if isinstance(v, str) else v for k, v in body.items()}
    answer = await api.post("/api/v1/numbers", json=sent)
    assert answer.status_code == 422, answer.text
    assert says in answer.json()["error"]
    assert (await api.get(f"/api/v1/numbers/{tenant}-x")).status_code == 404


async def test_a_number_that_exists_is_409(api, tenant):
    assert (await api.post("/api/v1/numbers", json={"key": f"{tenant}-a"})).status_code == 201
    again = await api.post("/api/v1/numbers", json={"key": f"{tenant}-a"})
    assert again.status_code == 409 and "already exists" in again.json()["error"]


async def test_the_configured_number_is_not_deleted(served, api, tenant):
    await served.app.console.numbers.add(tenant)
    refused = await api.delete(f"/api/v1/numbers/{tenant}")
    assert refused.status_code == 400 and "configured as tenant" in refused.json()["error"]
    assert (await api.get(f"/api/v1/numbers/{tenant}")).status_code == 200


async def test_adding_or_removing_wakes_the_node(served, api, tenant):
    woken: list[str] = []
    served.app.console.numbers_changed = lambda: woken.append("wake")
    await api.post("/api/v1/numbers", json={"key": f"{tenant}-w"})
    await api.post("/api/v1/numbers", json={"key": f"{tenant}-w"})  # 409: nothing changed
    await api.delete(f"/api/v1/numbers/{tenant}-w")
    assert woken == ["wake", "wake"]


async def test_openapi_describes_the_numbers_routes(api):
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert set(paths["/api/v1/numbers"]) == {"get", "post"}
    assert set(paths["/api/v1/numbers/{key}"]) == {"get", "delete"}
