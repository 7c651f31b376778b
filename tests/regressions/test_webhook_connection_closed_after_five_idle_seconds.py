"""The console's server closed a connection after 5 idle seconds (uvicorn's default). Meta
keeps its webhook connections open between deliveries, so a delivery sent just as the
server closed the connection failed and came again: under a steady load the benchmark saw
"Server disconnected" and "Can not write request body" on reused connections. A connection
now stays open 75 idle seconds, as nginx and aiohttp keep them."""

from __future__ import annotations

import asyncio
import json

from bot.gateway.cloud.webhook import PATH, SIGNATURE, webhook_router
from bot.settings import HttpSettings
from bot.web.server import WebServer
from tests.fakes import meta_webhooks as meta


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bytes:
    body = json.dumps(meta.text("5215512345678", "hola", msg_id=f"wamid.K{n}")).encode()
    writer.write(f"POST {PATH} HTTP/1.1\r\nHost: meta\r\nContent-Type: application/json\r\n"
                 f"{SIGNATURE}: {meta.sign(body)}\r\nContent-Length: {len(body)}\r\n\r\n"
                 .encode() + body)
    await writer.drain()
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\nok"), 5)


async def test_a_webhook_connection_idle_for_six_seconds_still_delivers():
    receiver = meta.Intake()
    server = WebServer(None, None, HttpSettings(host="127.0.0.1", port=0),  # type: ignore[arg-type]
                       extra_routers=[webhook_router(receiver)])
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            assert (await _post(reader, writer, 1)).startswith(b"HTTP/1.1 200")
            await asyncio.sleep(6)  # Meta had nothing to deliver for a while
            assert (await _post(reader, writer, 2)).startswith(b"HTTP/1.1 200")
        finally:
            writer.close()
    finally:
        await server.stop()
    assert [m.msg_id for m in receiver.messages] == ["wamid.K1", "wamid.K2"]
