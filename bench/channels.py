"""Webhook acknowledgement latency and end-to-end turns through the real channel code.

Starts the bot (`python app.py`, fresh SQLite store) with WhatsApp, SMS and Messenger pointed at
fake Twilio and Graph servers running in this process, and a bare aiohttp echo server. 64
senders (half WhatsApp, half Messenger) each send a signed webhook, wait for the fake provider
to receive the bot's reply, and send the next. Prints acknowledgement latency, end-to-end
latency and turns/s beside the echo's.

    python bench/channels.py [--senders 64] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from uuid import uuid4

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.turns import drive, free_port, summary, wait_healthy  # noqa: E402
from tests.fakes.providers import (  # noqa: E402
    FakeGraph,
    FakeTwilio,
    encode_form,
    messenger_body,
    twilio_form,
)


class Arrivals:
    """Counts replies per recipient and wakes whoever waits for one."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self.events: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    def arrived(self, recipient: str) -> None:
        self.counts[recipient] += 1
        self.events[recipient].set()


class CountingTwilio(FakeTwilio):
    def __init__(self, arrivals: Arrivals) -> None:
        super().__init__()
        self.arrivals = arrivals

    async def create_message(self, request):
        response = await super().create_message(request)
        self.arrivals.arrived(self.requests[-1]["to"])
        return response


class CountingGraph(FakeGraph):
    def __init__(self, arrivals: Arrivals) -> None:
        super().__init__()
        self.arrivals = arrivals

    async def send(self, request):
        response = await super().send(request)
        body = self.requests[-1]["json"]
        if "message" in body:
            self.arrivals.arrived(body["recipient"]["id"])
        return response


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--senders", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    arrivals = Arrivals()
    twilio, graph = await CountingTwilio(arrivals).start(), await CountingGraph(arrivals).start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    port, echo_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "PUBLIC_BASE_URL": base,
        "TWILIO_ACCOUNT_SID": FakeTwilio.account_sid,
        "TWILIO_AUTH_TOKEN": FakeTwilio.auth_token,
        "TWILIO_WHATSAPP_FROM": "whatsapp:+15550001111",
        "TWILIO_SMS_FROM": "+15550001111",
        "TWILIO_API_BASE": twilio.url,
        "GRAPH_API_BASE": graph.url,
        "MESSENGER_PAGE_ACCESS_TOKEN": FakeGraph.page_token,
        "MESSENGER_APP_SECRET": FakeGraph.app_secret,
        "MESSENGER_VERIFY_TOKEN": FakeGraph.verify_token,
        "SENDER_RATE_LIMIT": "0",  # each simulated sender writes far faster than a person
    }
    procs = [
        subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env),
        subprocess.Popen([sys.executable, str(ROOT / "bench" / "echo_server.py"), str(echo_port)], cwd=ROOT),
    ]
    acks: dict[str, list[float]] = {"whatsapp": [], "messenger": []}
    turns: list[float] = []
    try:
        await wait_healthy(f"{base}/healthz")
        await wait_healthy(f"http://127.0.0.1:{echo_port}/healthz")

        async def no_headers(session, i):
            return {}

        echo = await drive(
            f"http://127.0.0.1:{echo_port}/echo",
            lambda n, i: {"text": "hi"},
            no_headers,
            args.senders,
            args.seconds,
            args.senders,
        )
        stop = time.monotonic() + args.seconds
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.senders)) as session:

            async def whatsapp(n: int) -> tuple[str, str]:
                number = f"+1555{n:07d}"
                form = twilio_form("whatsapp", number, "hi", sid="SM" + uuid4().hex)
                body = encode_form(form)
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": twilio.sign(base + "/webhooks/twilio/whatsapp", form),
                }
                return "/webhooks/twilio/whatsapp", body, headers, "whatsapp:" + number

            async def messenger(n: int):
                psid = f"9{n:015d}"
                body = messenger_body(
                    {
                        "sender": {"id": psid},
                        "recipient": {"id": "PAGE"},
                        "timestamp": 1,
                        "message": {"mid": "m_" + uuid4().hex, "text": "hi"},
                    }
                )
                headers = {"Content-Type": "application/json", "X-Hub-Signature-256": graph.sign(body)}
                return "/webhooks/messenger", body, headers, psid

            async def sender(n: int) -> None:
                channel = "whatsapp" if n % 2 == 0 else "messenger"
                while time.monotonic() < stop:
                    path, body, headers, recipient = await (whatsapp(n) if channel == "whatsapp" else messenger(n))
                    arrivals.events[recipient].clear()
                    before = arrivals.counts[recipient]
                    started = time.perf_counter()
                    async with session.post(base + path, data=body, headers=headers) as resp:
                        await resp.read()
                        assert resp.status == 200, resp.status
                    acks[channel].append(time.perf_counter() - started)
                    while arrivals.counts[recipient] == before:
                        await asyncio.wait_for(arrivals.events[recipient].wait(), timeout=60)
                        arrivals.events[recipient].clear()
                    turns.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(sender(n) for n in range(args.senders)))
            elapsed = time.perf_counter() - started
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        await twilio.close()
        await graph.close()
    end_to_end = summary(turns, elapsed)
    print(f"{args.senders} senders, {args.seconds:.0f} s per run")
    print(
        f"bare aiohttp echo               {echo['turns_per_s']:8.0f}/s   p50 {echo['p50_ms']:6.1f} ms   p95 {echo['p95_ms']:6.1f} ms"
    )
    for channel, values in acks.items():
        s = summary(values, elapsed)
        print(
            f"webhook ack, {channel:10}         p50 {s['p50_ms']:6.1f} ms   p95 {s['p95_ms']:6.1f} ms  (target p95 < 20 ms)"
        )
    print(
        f"end to end (webhook -> fake)    {end_to_end['turns_per_s']:8.0f}/s   p50 {end_to_end['p50_ms']:6.1f} ms   "
        f"p95 {end_to_end['p95_ms']:6.1f} ms"
    )
    print(f"end-to-end turns / echo:        {end_to_end['turns_per_s'] / echo['turns_per_s']:.1%}")


if __name__ == "__main__":
    asyncio.run(main())
