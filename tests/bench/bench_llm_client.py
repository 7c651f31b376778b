"""The model client's own CPU per call (not part of the test run), with many calls in
flight, as on a busy daemon: the OpenAI SDK's `post` over its default httpx transport, the
same over aiohttp (`openai.DefaultAioHttpClient`, what wabot's SDK client uses for
transcriptions and embeddings), and wabot's chat call (`LLM.complete` through
`bot.chat_endpoint.ChatEndpoint`: one aiohttp pool, the answer parsed into `Completion`).

    python tests/bench/bench_llm_client.py [--in-flight 32 256] [--latency 0.2] [--calls 3000]

The fake OpenAI-wire server runs in its own process, so the CPU figures are the client's.
The request is a warm turn's: a system prompt, 20 lines of history and four tools.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "bench"))

import openai  # noqa: E402
from bench_pipeline import start_fake_llm  # noqa: E402
from openai.types.chat import ChatCompletion  # noqa: E402

from bot.llm import LLM  # noqa: E402

BODY = {
    "model": "fake-model", "temperature": 0.6, "max_tokens": 600,
    "messages": [{"role": "system", "content": "You are the shop's sales agent. " * 40}] + [
        {"role": "user" if i % 2 == 0 else "assistant",
         "content": f"line {i}: do you have the blue sneakers in size 24?"} for i in range(20)],
    "tools": [{"type": "function", "function": {
        "name": f"tool_{i}", "description": "Search the catalog. " * 5,
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                       "required": ["query"]}}} for i in range(4)],
}


async def measure(call: Callable[[], Awaitable[object]], in_flight: int,
                  calls: int) -> tuple[float, float]:
    """CPU ms per call and calls per second, after a warm-up that opens the connections."""
    slots = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with slots:
            await call()

    await asyncio.gather(*(one() for _ in range(2 * in_flight)))
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    return (time.process_time() - cpu0) / calls * 1000, calls / (time.perf_counter() - t0)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--in-flight", type=int, nargs="+", default=[32, 256])
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--calls", type=int, default=3000)
    args = ap.parse_args()
    proc, base_url = start_fake_llm(args.latency)
    try:
        print(f"fake model latency {args.latency * 1000:.0f} ms, {args.calls} calls")
        for in_flight in args.in_flight:
            for name, http in (("SDK over httpx", None),
                               ("SDK over aiohttp", openai.DefaultAioHttpClient()),
                               ("wabot's chat call", openai.DefaultAioHttpClient())):
                client = openai.AsyncOpenAI(api_key="bench", base_url=base_url, max_retries=0,
                                            http_client=http)
                llm = LLM(client, BODY["model"], temperature=0.6, max_tokens=600)
                if name == "wabot's chat call":
                    cpu, rate = await measure(
                        lambda llm=llm: llm.complete(BODY["messages"], BODY["tools"]),
                        in_flight, args.calls)
                else:
                    cpu, rate = await measure(lambda client=client: client.post(
                        "/chat/completions", body=BODY, cast_to=ChatCompletion),
                        in_flight, args.calls)
                await llm.close()
                print(f"  in flight {in_flight:>4}  {name:<18} CPU {cpu:.2f} ms/call  "
                      f"{rate:7.0f} calls/s")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
