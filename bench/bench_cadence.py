"""Streams at a real model's pace: the CPU each relayed chunk costs, and how many concurrent streams one process carries.

    .venv/bin/python -m bench.bench_cadence [--streams 100,250,500,1000] [--chunks 80] [--cadence-ms 25] [--workers 1]

A fast fake upstream sends each stream's chunks every ``--cadence-ms`` (25 ms: 40 tok/s, about Hermes 4 405B's pace).
For each count of streams, all open at once, first through the bare aiohttp relay (``bench/aiohttp_relay.py``, the
floor: no logic at all) and then through ``hermes-proxy serve`` (budgets, metrics, request logs on; a SQLite ledger),
and prints: CPU per relayed chunk (the server's CPU over the run, less its idle, over the chunks it relayed), time to
first byte p50/p99, the p99 gap between two chunks of one stream as the client saw it (25 ms is perfect), and listen
queue overflows (``TcpExt: ListenOverflows`` in ``/proc/net/netstat``, connections the kernel dropped).

The load generator runs on the same machine: on 2 cores its own CPU competes with the server's, so the figures are a
lower bound of what a dedicated host carries. Everything is bounded and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.bench_proxy import ROOT, free_port, spawn, stop_all, tree_cpu_s, wait_ready, write_config

BODY = {"model": "hermes-4-405b", "messages": [{"role": "user", "content": "Tell me about Hermes."}],
        "max_tokens": 256, "stream": True}


def listen_overflows() -> int:
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return -1
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        if header.startswith("TcpExt:"):
            fields = dict(zip(header.split()[1:], values.split()[1:], strict=False))
            return int(fields.get("ListenOverflows", -1))
    return -1


async def open_streams(url: str, count: int) -> tuple[list[float], list[float], int]:
    """Open ``count`` streams at once; per stream its time to first byte and its largest gap between chunks; and the
    chunks received in all."""
    ttfbs: list[float] = []
    gaps: list[float] = []
    chunks = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
        async def one() -> None:
            nonlocal chunks
            start = time.perf_counter()
            previous: float | None = None
            async with session.post(url, json=BODY) as response:
                assert response.status == 200, response.status
                async for line in response.content:
                    if not line.startswith(b"data: {"):
                        continue
                    now = time.perf_counter()
                    chunks += 1
                    if previous is None:
                        ttfbs.append(now - start)
                    else:
                        gaps.append(now - previous)
                    previous = now

        await asyncio.gather(*(one() for _ in range(count)))
    return ttfbs, gaps, chunks


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


async def measure(label: str, url: str, pid: int, count: int) -> float:
    idle_cpu_before = tree_cpu_s(pid)
    await asyncio.sleep(1.0)
    idle_per_s = tree_cpu_s(pid) - idle_cpu_before
    overflows = listen_overflows()
    cpu_before, wall_before = tree_cpu_s(pid), time.perf_counter()
    ttfbs, gaps, chunks = await open_streams(url, count)
    wall = time.perf_counter() - wall_before
    cpu = tree_cpu_s(pid) - cpu_before - idle_per_s * wall
    per_chunk_us = cpu / max(1, chunks) * 1e6
    print(f"  {label:<13} {count:5d} streams: {per_chunk_us:6.1f} us CPU/chunk; TTFB p50 {pct(ttfbs, .5):7.1f} ms "
          f"p99 {pct(ttfbs, .99):7.1f} ms; chunk gap p50 {pct(gaps, .5):5.1f} ms p99 {pct(gaps, .99):6.1f} ms "
          f"max {max(gaps) * 1000 if gaps else float('nan'):6.0f} ms; listen overflows "
          f"{listen_overflows() - overflows}")
    return per_chunk_us


async def run(args: argparse.Namespace) -> None:
    counts = [int(c) for c in args.streams.split(",")]
    upstream_port, proxy_port, relay_port = free_port(), free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            procs.append(spawn(["-m", "bench.fast_upstream", "--port", str(upstream_port), "--chunks",
                                str(args.chunks), "--chunk-delay-ms", str(args.cadence_ms)], env, quiet=True))
            config = write_config(Path(tmp), upstream_port, budgets=True, ops=True,
                                  rate_limits_url=args.rate_limits_url)
            proxy = spawn(["-m", "hermes_proxy.cli", "serve", "--config", str(config), "--port", str(proxy_port),
                           "--workers", str(args.workers)], env, quiet=True)
            relay = spawn(["-m", "bench.aiohttp_relay", "--port", str(relay_port), "--upstream",
                           f"http://127.0.0.1:{upstream_port}"], env, quiet=True)
            procs += [proxy, relay]
            await wait_ready(f"http://127.0.0.1:{upstream_port}/v1/models")
            await wait_ready(f"http://127.0.0.1:{proxy_port}/healthz")
            await wait_ready(f"http://127.0.0.1:{relay_port}/nothing")
            print(f"{args.chunks} chunks a stream every {args.cadence_ms:g} ms; hermes-proxy with {args.workers} "
                  f"worker(s), budgets, metrics and request logs on")
            ratios = []
            for count in counts:
                floor = await measure("floor (relay)", f"http://127.0.0.1:{relay_port}/v1/chat/completions",
                                      relay.pid, count)
                ours = await measure("hermes-proxy", f"http://127.0.0.1:{proxy_port}/v1/chat/completions",
                                     proxy.pid, count)
                ratios.append(ours / floor if floor > 0 else float("nan"))
            print(f"hermes-proxy / floor, CPU per chunk: {', '.join(f'{r:.2f}x' for r in ratios)} "
                  f"(median {statistics.median(ratios):.2f}x)")
        finally:
            stop_all(procs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default="100,250,500,1000", help="comma-separated counts of concurrent streams")
    parser.add_argument("--chunks", type=int, default=80)
    parser.add_argument("--cadence-ms", type=float, default=25.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rate-limits-url", help="Redis for the rate limits (needed with --workers > 1)")
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
