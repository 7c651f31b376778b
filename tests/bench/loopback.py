"""Loopback servers for `bench_cloud.py`, each run in a process of its own so that it does
not eat the CPU being measured:

    python -m tests.bench.loopback graph [--latency S]          # Meta's Graph API
    python -m tests.bench.loopback relay --model URL --graph URL  # the bare relay

Each prints `READY <url>` once listening and serves until SIGTERM.

The Graph API answers sends and read receipts (and the number's node) and counts them;
`GET /stats` gives the counts, replies per recipient included (a second reply to one
recipient is a duplicate). `GET /times` gives, per recipient, when each reply arrived
(`time.monotonic()`, which on Linux is one clock for every process: the driver compares it
with when it posted the webhook).

The bare relay is the floor wabot is measured against: an aiohttp server that checks the
webhook's signature, parses it, posts the text to the model and the answer to Graph. No storage, no memory, no ordering: what any such bot must do at least.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import signal
import time
from collections import Counter, defaultdict
from typing import Any

import aiohttp
from aiohttp import web

APP_SECRET = "app-secret-for-tests"  # tests.fakes.meta_webhooks signs with it
PHONE_NUMBER_ID = "106540352242922"
TOKEN = "graph-test-token"
SYSTEM = ("You are the assistant of Casa Azul, a clothing shop. Answer the customer briefly "
          "and warmly, in their language.")


# --- Meta's Graph API --------------------------------------------------------------------


def graph_app(latency: float) -> web.Application:
    replies: Counter[str] = Counter()
    arrived: defaultdict[str, list[float]] = defaultdict(list)
    counts = {"sends": 0, "reads": 0, "refused": 0}
    ids = itertools.count(1)

    async def messages(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            counts["refused"] += 1
            return web.json_response({"error": {"code": 190, "message": "bad token"}},
                                     status=401)
        body = await request.json()
        at = time.monotonic()
        if latency:
            await asyncio.sleep(latency)
        if "status" in body:
            counts["reads"] += 1
            return web.json_response({"success": True})
        counts["sends"] += 1
        replies[str(body.get("to"))] += 1
        arrived[str(body.get("to"))].append(at)
        return web.json_response({"messaging_product": "whatsapp",
                                  "messages": [{"id": f"wamid.OUT{next(ids):08d}"}]})

    async def node(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["node"],
                                  "display_phone_number": "+1 555 010 0199",
                                  "verified_name": "Casa Azul"})

    async def stats(request: web.Request) -> web.Response:
        prefix = request.query.get("prefix", "")
        mine = [n for to, n in replies.items() if to.startswith(prefix)]
        return web.json_response({**counts, "recipients": len(mine),
                                  "replies": sum(mine), "duplicates": sum(mine) - len(mine)})

    async def times(request: web.Request) -> web.Response:
        prefix = request.query.get("prefix", "")
        return web.json_response({to: at for to, at in arrived.items()
                                  if to.startswith(prefix)})

    app = web.Application()
    app.router.add_post("/v21.0/{number}/messages", messages)
    app.router.add_get("/v21.0/{node}", node)
    app.router.add_get("/stats", stats)
    app.router.add_get("/times", times)
    return app


# --- the bare relay ----------------------------------------------------------------------


def relay_app(model_url: str, graph_url: str) -> web.Application:
    tasks: set[asyncio.Task[None]] = set()
    secret = APP_SECRET.encode()
    messages_url = f"{graph_url}/{PHONE_NUMBER_ID}/messages"
    graph_headers = {"Authorization": f"Bearer {TOKEN}"}
    model_headers = {"Authorization": "Bearer bench"}

    async def on_startup(app: web.Application) -> None:
        app["http"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000),
                                            timeout=aiohttp.ClientTimeout(total=60))

    async def on_cleanup(app: web.Application) -> None:
        await app["http"].close()

    async def answer(http: aiohttp.ClientSession, sender: str, text: str) -> None:
        request = {"model": "bench", "temperature": 0.6, "max_tokens": 600,
                   "messages": [{"role": "system", "content": SYSTEM},
                                {"role": "user", "content": text}]}
        async with http.post(f"{model_url}/chat/completions", json=request,
                             headers=model_headers) as response:
            completion = await response.json()
        reply = completion["choices"][0]["message"]["content"] or "…"
        body = {"messaging_product": "whatsapp", "recipient_type": "individual",
                "to": sender, "type": "text", "text": {"body": reply, "preview_url": False}}
        async with http.post(messages_url, json=body, headers=graph_headers) as response:
            await response.read()

    async def webhook(request: web.Request) -> web.Response:
        raw = await request.read()
        expected = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
            return web.Response(status=401)
        payload = json.loads(raw)
        for entry in payload.get("entry", []):
            for change in entry.get("changes", []):
                for message in change.get("value", {}).get("messages", []):
                    if message.get("type") != "text":
                        continue
                    task = asyncio.create_task(answer(request.app["http"], message["from"],
                                                      message["text"]["body"]))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhooks/whatsapp", webhook)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


# --- standalone --------------------------------------------------------------------------


async def serve(app: web.Application) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"READY http://127.0.0.1:{port}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loopback servers for bench_cloud.py")
    parser.add_argument("what", choices=["graph", "relay"])
    parser.add_argument("--latency", type=float, default=0.0, help="Graph: seconds per call")
    parser.add_argument("--model", default="", help="relay: the model's base URL (…/v1)")
    parser.add_argument("--graph", default="", help="relay: the Graph API's URL (…/v21.0)")
    args = parser.parse_args(argv)
    app: Any = (graph_app(args.latency) if args.what == "graph"
                else relay_app(args.model, args.graph))
    asyncio.run(serve(app))


if __name__ == "__main__":
    main()
