"""Open-loop HTTP reads for the benchmarks: a person-year endpoint beside a bare one, at a fixed rate."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.readside_app import TOKEN

REPO = Path(__file__).resolve().parents[1]
RATE = 500.0


class Http:
    """Keep-alive HTTP/1.1 on raw asyncio streams: httpx costs ~1 ms of client CPU per request, which at
    500 requests/s on a shared 2-core machine would be measuring the client, not the server."""

    def __init__(self, port: int, connections: int = 32):
        self.port, self.size = port, connections
        self.free: asyncio.Queue = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            self.free.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))

    async def get(self, path: str) -> int:
        reader, writer = await self.free.get()
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            return int(head[9:12])
        finally:
            self.free.put_nowait((reader, writer))

    async def close(self) -> None:
        while not self.free.empty():
            _, writer = self.free.get_nowait()
            writer.close()


async def latency(client: Http, paths: list[str], seconds: float) -> list[float]:
    """Open loop at RATE: each request is timed from when it was due, whatever the answers before it did."""
    latencies: list[float] = []
    failures = 0

    async def one(path: str, due: float) -> None:
        nonlocal failures
        failures += await client.get(path) != 200
        latencies.append(time.perf_counter() - due)

    tasks = []
    start = time.perf_counter()
    for i in range(int(RATE * seconds)):
        due = start + i / RATE
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(paths[i % len(paths)], due)))
    await asyncio.gather(*tasks)
    if failures:
        raise RuntimeError(f"{failures} requests failed")
    return sorted(latencies)


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p * len(values)))] * 1000


async def reads(env: dict[str, str], persons: list[str], seconds: float) -> dict[str, list[float]]:
    port = 18700 + os.getpid() % 500
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "benchmarks.readside_app:app",
                               "--port", str(port), "--log-level", "warning", "--no-access-log"],
                              env=env, cwd=REPO)
    client = Http(port)
    try:
        for _ in range(300):
            try:
                await client.open()
                if await client.get("/bare") == 200:
                    break
            except OSError:
                await asyncio.sleep(0.1)
        year_paths = [f"/v1/persons/{p}/years/2022" for p in persons]
        await latency(client, year_paths, 2.0)                                # warm connections and caches
        return {"bare": await latency(client, ["/bare"], seconds),
                "years": await latency(client, year_paths, seconds)}
    finally:
        await client.close()
        server.terminate()
        server.wait(10)
