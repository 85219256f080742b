"""Proxy overhead benchmark: the same load sent straight to a fast fake upstream and through hermes-proxy.

    .venv/bin/python -m bench.bench_proxy [--requests 2000] [--concurrency 50] [--streams 500] [--budgets]

Starts the fake upstream and one proxy process (real `hermes-proxy serve`, SQLite ledger in a temp dir) on loopback,
drives them with an aiohttp client from this process, and prints: added latency p50/p99 (non-streaming), requests/s
direct and proxied, time to first byte and per-chunk relay overhead for streams, 500 concurrent streams, peak RSS.
Everything is bounded and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
BODY = {"model": "hermes-4-405b", "messages": [{"role": "user", "content": "Say something about Hermes."}],
        "max_tokens": 64}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(url: str, within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def write_config(directory: Path, upstream_port: int, *, budgets: bool, ops: bool,
                 rate_limits_url: str | None = None) -> Path:
    team = "[teams.bench]\n"
    if budgets:
        team += 'budgets = [{ window = "daily", limit_usd = 1000000 }]\n'
    if ops:
        team += "rate_limits = { requests_per_minute = 100000000, tokens_per_minute = 1000000000000 }\n"
    config = directory / "bench.toml"
    config.write_text(f"""
[server]
auth = "none"
metrics = {str(ops).lower()}
request_log = {str(ops).lower()}
[ledger]
url = "sqlite:///{directory / 'ledger.sqlite3'}"
[chat]
team = "bench"
{f'[rate_limits]{chr(10)}url = "{rate_limits_url}"' if rate_limits_url else ""}
[[upstreams]]
name = "fake"
kind = "vllm"
base_url = "http://127.0.0.1:{upstream_port}/v1"
max_connections = 1000
[models.hermes-4-405b]
routes = [{{ upstream = "fake", model = "Hermes-4-405B", input_usd_per_mtok = 1.0, output_usd_per_mtok = 3.0 }}]
{team}
""")
    return config


def spawn(args: list[str], env: dict[str, str], *, quiet: bool = False) -> subprocess.Popen[bytes]:
    out = subprocess.DEVNULL if quiet else None
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=out)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each (a proxy with workers stops them), then SIGKILL any still there after 30 s."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of the proxy: its process and, with --workers, its workers."""
    total = cpu_s(pid)
    for child in children(pid):
        try:
            total += cpu_s(child)
        except OSError:
            pass
    return total


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def non_streaming(url: str, requests: int, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    queue = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            for _ in queue:
                start = time.perf_counter()
                async with session.post(url, json=BODY) as response:
                    await response.read()
                    assert response.status == 200, response.status
                latencies.append(time.perf_counter() - start)

        begin = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - begin
    return latencies, requests / elapsed


async def paced(url: str, rate: float, seconds: float) -> tuple[list[float], int]:
    """Open-loop load: a new request every 1/rate s whatever the others do; latencies and the peak in flight."""
    latencies: list[float] = []
    in_flight = peak = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one() -> None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            start = time.perf_counter()
            async with session.post(url, json=BODY) as response:
                await response.read()
                assert response.status == 200, response.status
            latencies.append(time.perf_counter() - start)
            in_flight -= 1

        tasks = []
        begin = time.perf_counter()
        for index in range(int(rate * seconds)):
            delay = begin + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one()))
        await asyncio.gather(*tasks)
    return latencies, peak


async def streaming(url: str, streams: int, concurrency: int) -> tuple[list[float], list[float], int]:
    """TTFB per stream, total time per stream, and count of streams that stalled (>10 s between events)."""
    ttfbs: list[float] = []
    totals: list[float] = []
    stalled = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    body = {**BODY, "stream": True}
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        semaphore = asyncio.Semaphore(concurrency)

        async def one() -> None:
            nonlocal stalled
            async with semaphore:
                start = time.perf_counter()
                first: float | None = None
                last = start
                async with session.post(url, json=body) as response:
                    assert response.status == 200, response.status
                    async for _ in response.content.iter_any():
                        now = time.perf_counter()
                        if first is None:
                            first = now
                        if now - last > 10:
                            stalled += 1
                        last = now
                ttfbs.append((first or last) - start)
                totals.append(last - start)

        await asyncio.gather(*(one() for _ in range(streams)))
    return ttfbs, totals, stalled


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run(args: argparse.Namespace) -> None:
    upstream_port, proxy_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            procs.append(spawn(["-m", "bench.fast_upstream", "--port", str(upstream_port),
                                "--chunks", str(args.chunks)], env))
            config = write_config(Path(tmp), upstream_port, budgets=args.budgets, ops=not args.bare,
                                  rate_limits_url=args.rate_limits_url)
            proxy = spawn(["-m", "hermes_proxy.cli", "serve", "--config", str(config), "--port", str(proxy_port),
                           "--workers", str(args.workers)], env, quiet=True)
            procs.append(proxy)
            direct = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
            proxied = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
            await wait_ready(f"http://127.0.0.1:{upstream_port}/v1/models")
            await wait_ready(f"http://127.0.0.1:{proxy_port}/healthz")
            # warm-up
            await non_streaming(proxied, 200, 10)
            await non_streaming(direct, 200, 10)

            d_lat, d_rps = await non_streaming(direct, args.requests, args.concurrency)
            cpu_before = tree_cpu_s(proxy.pid)
            p_lat, p_rps = await non_streaming(proxied, args.requests, args.concurrency)
            cpu_per_request_us = (tree_cpu_s(proxy.pid) - cpu_before) / args.requests * 1e6
            features = ["budgets on" if args.budgets else "no budget",
                        "metrics, request logs and rate limits off" if args.bare else "metrics, request logs, rate limits on"]
            features.append(f"{args.workers} worker{'s' if args.workers > 1 else ''}")
            print(f"non-streaming, {args.requests} requests at concurrency {args.concurrency} ({'; '.join(features)}):")
            print(f"  direct : p50 {pct(d_lat, .5):7.2f} ms  p99 {pct(d_lat, .99):7.2f} ms  {d_rps:8.0f} req/s")
            print(f"  proxied: p50 {pct(p_lat, .5):7.2f} ms  p99 {pct(p_lat, .99):7.2f} ms  {p_rps:8.0f} req/s")
            print(f"  added  : p50 {pct(p_lat, .5) - pct(d_lat, .5):7.2f} ms  "
                  f"p99 {pct(p_lat, .99) - pct(d_lat, .99):7.2f} ms  throughput {100 * p_rps / d_rps:5.1f}% of direct")
            print(f"  proxy CPU per request: {cpu_per_request_us:.0f} us (user+system, all threads)")
            if args.floor:
                relay_port = free_port()
                relay = spawn(["-m", "bench.aiohttp_relay", "--port", str(relay_port), "--upstream",
                               f"http://127.0.0.1:{upstream_port}"], env, quiet=True)
                procs.append(relay)
                relay_url = f"http://127.0.0.1:{relay_port}/v1/chat/completions"
                await wait_ready(f"http://127.0.0.1:{relay_port}/nothing")
                await non_streaming(relay_url, 200, 10)
                cpu_before = cpu_s(relay.pid)
                r_lat, r_rps = await non_streaming(relay_url, args.requests, args.concurrency)
                relay_cpu_us = (cpu_s(relay.pid) - cpu_before) / args.requests * 1e6
                print(f"  floor (bare aiohttp relay, no logic): p50 {pct(r_lat, .5):7.2f} ms  {r_rps:8.0f} req/s  "
                      f"{100 * r_rps / d_rps:5.1f}% of direct, {relay_cpu_us:.0f} us CPU per request")

            rate = args.rate
            d_open, _ = await paced(direct, rate, 5)
            p_open, peak = await paced(proxied, rate, 5)
            print(f"paced at {rate:.0f} req/s for 5 s (open loop; up to {peak} in flight through the proxy):")
            print(f"  added  : p50 {pct(p_open, .5) - pct(d_open, .5):7.2f} ms  p99 {pct(p_open, .99) - pct(d_open, .99):7.2f} ms"
                  f"  (direct p50 {pct(d_open, .5):.2f} ms, proxied p50 {pct(p_open, .5):.2f} ms)")

            # sequential latency: the overhead of one request with no queueing
            d_seq, _ = await non_streaming(direct, 300, 1)
            p_seq, _ = await non_streaming(proxied, 300, 1)
            print(f"  sequential added: p50 {statistics.median(p_seq) * 1000 - statistics.median(d_seq) * 1000:.2f} ms")

            d_ttfb, _, _ = await streaming(direct, 200, 20)
            cpu_before = tree_cpu_s(proxy.pid)
            p_ttfb, _, _ = await streaming(proxied, 200, 20)
            stream_cpu_us = (tree_cpu_s(proxy.pid) - cpu_before) / 200 * 1e6
            per_chunk_us = (stream_cpu_us - cpu_per_request_us) / args.chunks
            print(f"streams ({args.chunks} chunks each, concurrency 20):")
            print(f"  TTFB direct p50 {pct(d_ttfb, .5):.2f} ms, proxied p50 {pct(p_ttfb, .5):.2f} ms "
                  f"(added {pct(p_ttfb, .5) - pct(d_ttfb, .5):.2f} ms)")
            print(f"  proxy CPU per stream {stream_cpu_us:.0f} us; per chunk relayed ~{per_chunk_us:.1f} us "
                  "(stream CPU minus one request's, over the chunks)")

            _, s_tot, stalled = await streaming(proxied, args.streams, args.streams)
            print(f"{args.streams} concurrent streams through the proxy: all finished, {stalled} stalls, "
                  f"slowest {max(s_tot):.2f} s")
            print(f"proxy peak RSS: {rss_mb(proxy.pid) + sum(rss_mb(c) for c in children(proxy.pid)):.0f} MB "
                  "(all its processes)")
        finally:
            stop_all(procs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--rate", type=float, default=300.0, help="offered load for the paced (open-loop) run")
    parser.add_argument("--budgets", action="store_true", help="give the team a budget (ledger reserve+settle)")
    parser.add_argument("--bare", action="store_true", help="metrics, request logs and rate limits off")
    parser.add_argument("--floor", action="store_true", help="also measure a bare aiohttp relay with no logic")
    parser.add_argument("--workers", type=int, default=1, help="hermes-proxy serve --workers N")
    parser.add_argument("--rate-limits-url", help="Redis for the rate limits (needed with --workers > 1 unless --bare)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
