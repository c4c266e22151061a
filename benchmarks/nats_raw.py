"""The baselines of bench_nats, as a process of their own (like the adjudicator worker it is compared with).

``python -m benchmarks.nats_raw NATS_URL STREAM CONSUMER REPLY_SUBJECT``:

* a raw nats-py loop on a pull consumer: ``fetch`` a batch, publish one reply
  per message (its own payload back, about the size of a result), ``ack`` it —
  everything the ledger's feed does except deciding and storing;
* an echo responder on ``bench.echo`` (request/reply with no work), the
  latency baseline.

Prints ``ready`` once subscribed; stops on SIGTERM.
"""
from __future__ import annotations

import asyncio
import signal
import sys

import nats
from nats.errors import TimeoutError as NatsTimeout

ECHO_SUBJECT = "bench.echo"
ECHO_REPLY = b"x" * 700


async def main(url: str, stream: str, consumer: str, reply_subject: str) -> None:
    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    js = nc.jetstream()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)

    async def echo(msg) -> None:
        await nc.publish(msg.reply, ECHO_REPLY)

    await nc.subscribe(ECHO_SUBJECT, cb=echo)
    sub = await js.pull_subscribe_bind(consumer, stream=stream)
    print("ready", flush=True)
    while not stop.is_set():
        try:
            msgs = await sub.fetch(256, timeout=0.5)
        except (NatsTimeout, asyncio.TimeoutError):
            continue
        for msg in msgs:
            await nc.publish(reply_subject, msg.data)
            await msg.ack()
    await nc.drain()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
