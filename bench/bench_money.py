"""Money under misbehaving upstreams: three ``hermes-proxy serve`` replicas on one PostgreSQL, 200 concurrent requests
per case against a team budget that fits about 30 worst-case requests.

    .venv/bin/python -m bench.bench_money --postgres postgresql://postgres@127.0.0.1:5432/test [--only a,b]

Each case gets a fresh schema (dropped at the end), a fake upstream (tests/fake_upstream.py) on loopback that
misbehaves one way, and three replicas on loopback ports with ``reservation_ttl_s`` = 2 s. Half the requests stream
(with ``stream_options.include_usage``), half do not. Printed per case: requests admitted / refused / failed, the
total clients were told (``x-hermes-cost-usd`` for non-streams, the usage chunk's ``cost`` for streams), the ledger's
total, the budget and the overshoot, and the holds left after the TTL and a purge. Not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from hermes_proxy.ledger.pg_statements import BILL_EXPIRED
from tests.fake_upstream import Script, make_upstream_app

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = 200
REPLICAS = 3
TTL_S = 2.0
BUDGET = Decimal("0.90")  # a worst case is ~31 prompt tokens x $10/Mtok + 1000 x $30/Mtok = ~$0.0303: ~30 fit
MAX_TOKENS = 1000
IN_PRICE, OUT_PRICE = Decimal(10), Decimal(30)
COMPLETION = 800  # what a well-behaved upstream generates and reports
HELLO = [{"role": "user", "content": "write a long story"}]


def _configured_cost(prompt: int, completion: int) -> Decimal:
    return (prompt * IN_PRICE + completion * OUT_PRICE) / 1_000_000


def _usage(completion: int) -> dict[str, Any]:
    return {"prompt_tokens": 31, "completion_tokens": completion, "total_tokens": 31 + completion}


@dataclass
class Case:
    name: str
    what: str
    script: Script
    request_id: str | None = None  # the client sends this x-request-id on every request
    kill_after_s: float | None = None  # SIGKILL replica 0 this long after the traffic starts
    notes: list[str] = field(default_factory=list)


def cases() -> list[Case]:
    def words(n: int) -> str:
        return "word " * n

    return [
        Case("a", "ignores max_tokens (3000 generated and reported)",
             Script(dialect="vllm", answer=words(3000), piece=5, ignore_max_tokens=True, usage=_usage(3000))),
        Case("b", "reports usage.cost 5x the configured price (OpenRouter)",
             Script(dialect="openrouter", answer=words(COMPLETION), piece=5, usage=_usage(COMPLETION),
                    openrouter_cost=float(5 * _configured_cost(31, COMPLETION)))),
        Case("c", "client repeats one x-request-id",
             Script(dialect="vllm", answer=words(COMPLETION), piece=5, usage=_usage(COMPLETION)),
             request_id="req-always-the-same"),
        Case("d", "dies mid-stream (after 100 content events)",
             Script(dialect="vllm", answer=words(COMPLETION), piece=5, usage=_usage(COMPLETION), die_after=100)),
        Case("e", "slower than the TTL (2 s TTL, ~6 s stream)",
             Script(dialect="vllm", answer=words(COMPLETION), piece=5, usage=_usage(COMPLETION), delay_s=0.0075)),
        Case("f", "one replica killed with SIGKILL mid-traffic (~3 s streams, kill at 1 s)",
             Script(dialect="vllm", answer=words(COMPLETION), piece=5, usage=_usage(COMPLETION), delay_s=0.004),
             kill_after_s=1.0),
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(path: Path, ledger_url: str, upstream_url: str, dialect: str) -> None:
    path.write_text(f"""
[server]
auth = "none"
request_log = false
[ledger]
url = "{ledger_url}"
reservation_ttl_s = {TTL_S}
outbox_path = "{path.parent / 'outbox.jsonl'}"
[[upstreams]]
name = "up"
kind = "{dialect}"
base_url = "{upstream_url}"
api_key_env = "BENCH_UPSTREAM_KEY"
[models.hermes-4-405b]
routes = [{{ upstream = "up", model = "Hermes-4-405B", input_usd_per_mtok = {IN_PRICE}, \
output_usd_per_mtok = {OUT_PRICE} }}]
[teams.default]
budgets = [{{ window = "daily", limit_usd = {BUDGET} }}]
max_tokens = {MAX_TOKENS}
""")


async def wait_up(port: int, process: subprocess.Popen[bytes], within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"replica on port {port} exited (see its log)")
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"replica on port {port} did not become ready")


@dataclass
class Outcome:
    status: int | str
    told: Decimal | None = None  # the cost the client was told


async def one(session: aiohttp.ClientSession, port: int, stream: bool, request_id: str | None) -> Outcome:
    body: dict[str, Any] = {"model": "hermes-4-405b", "messages": HELLO, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    headers = {"x-request-id": request_id} if request_id else {}
    try:
        async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body,
                                headers=headers) as response:
            if response.status != 200:
                await response.read()
                return Outcome(response.status)
            if not stream:
                await response.read()
                cost = response.headers.get("x-hermes-cost-usd")
                return Outcome(200, Decimal(cost) if cost else None)
            told = None
            async for line in response.content:
                if line.startswith(b"data: {"):
                    event = json.loads(line[6:])
                    usage = event.get("usage")
                    if usage and not event.get("choices") and usage.get("cost") is not None:
                        told = Decimal(str(usage["cost"]))
            return Outcome(200, told)
    except (TimeoutError, aiohttp.ClientError) as exc:
        return Outcome(type(exc).__name__)


async def run_case(case: Case, pg_base: str) -> dict[str, Any]:
    schema = f"hermes_money_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_base)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{pg_base}{'&' if '?' in pg_base else '?'}search_path={schema}"
    runner = web.AppRunner(make_upstream_app(case.script))
    await runner.setup()
    upstream_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", upstream_port).start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "proxy.toml"
            write_config(config, url, f"http://127.0.0.1:{upstream_port}/v1", case.script.dialect)
            env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": tmp, "BENCH_UPSTREAM_KEY": "sk-bench"}
            ports = [free_port() for _ in range(REPLICAS)]
            for port in ports:
                log = (Path(tmp) / f"replica-{port}.log").open("wb")
                processes.append(subprocess.Popen(  # noqa: ASYNC220 (a bench: started before any traffic)
                    [sys.executable, "-m", "hermes_proxy.cli", "serve", "--config", str(config), "--port", str(port)],
                    env=env, stdout=subprocess.DEVNULL, stderr=log))
                log.close()
            for port, process in zip(ports, processes, strict=True):
                try:
                    await wait_up(port, process)
                except RuntimeError:
                    print((Path(tmp) / f"replica-{port}.log").read_text()[-3000:], file=sys.stderr)
                    raise

            async def killer() -> None:
                if case.kill_after_s is not None:
                    await asyncio.sleep(case.kill_after_s)
                    processes[0].send_signal(signal.SIGKILL)

            started = time.monotonic()
            timeout = aiohttp.ClientTimeout(total=40)
            async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
                outcomes, _ = await asyncio.gather(
                    asyncio.gather(*(one(session, ports[i % REPLICAS], i % 2 == 0, case.request_id)
                                     for i in range(REQUESTS))),
                    killer())
            elapsed = time.monotonic() - started
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            await asyncio.sleep(TTL_S + 0.5)  # every hold a dead replica left has expired
            holds_before = await admin.fetchval(f'SELECT count(*) FROM "{schema}".holds')
            # the purge (what a ledger runs at start and every PURGE_EVERY): bill every team's expired holds; run as
            # SQL here so that this process needs no migration knowledge newer than the replicas'
            await admin.execute(f'SET search_path TO "{schema}"')
            await admin.fetchval(BILL_EXPIRED, datetime.now(UTC))
            await admin.execute("RESET search_path")
            holds_after = await admin.fetchval(f'SELECT count(*) FROM "{schema}".holds')
            row = await admin.fetchrow(
                f'SELECT count(*), COALESCE(SUM(cost_usd), 0), count(*) FILTER (WHERE status = \'expired\'), '
                f'count(*) FILTER (WHERE estimated), count(*) FILTER (WHERE cost_usd IS NULL) '
                f'FROM "{schema}".requests WHERE team = \'default\'')
            total = await admin.fetchval(
                f'SELECT COALESCE(MAX(spent_usd), 0) FROM "{schema}".team_totals WHERE team = \'default\'')
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        await runner.cleanup()
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
    statuses = Counter(o.status for o in outcomes)
    told = sum((o.told for o in outcomes if o.told is not None), Decimal(0))
    untold = sum(1 for o in outcomes if o.status == 200 and o.told is None)
    ledger_total = Decimal(row[1])
    return {
        "case": case.name, "what": case.what, "seconds": round(elapsed, 1),
        "admitted": statuses.get(200, 0), "refused": statuses.get(429, 0),
        "failed": {str(k): v for k, v in statuses.items() if k not in (200, 429)},
        "told": told, "told_missing": untold, "ledger": ledger_total, "team_total": Decimal(total),
        "rows": row[0], "expired_rows": row[2], "estimated_rows": row[3], "unknown_cost_rows": row[4],
        "budget": BUDGET, "overshoot_pct": max(Decimal(0), (ledger_total - BUDGET) / BUDGET * 100),
        "holds_after_ttl": holds_before, "holds_after_purge": holds_after,
    }


def show(result: dict[str, Any]) -> str:
    failed = ", ".join(f"{k} x{v}" for k, v in result["failed"].items()) or "0"
    return (f"| {result['case']} {result['what']} | {result['admitted']} / {result['refused']} / {failed} | "
            f"{result['told']:.6f} ({result['told_missing']} 200s told nothing) | {result['ledger']:.6f} "
            f"({result['rows']} rows, {result['expired_rows']} expired, {result['estimated_rows']} estimated) | "
            f"{result['budget']} | {result['overshoot_pct']:.1f} % | {result['holds_after_ttl']} -> "
            f"{result['holds_after_purge']} | {result['seconds']} s |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", metavar="URL", required=True)
    parser.add_argument("--only", help="comma-separated case letters (default: all)")
    args = parser.parse_args()
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # the upstream's writes to dropped connections
    wanted = set(args.only.split(",")) if args.only else None
    print("| case | admitted / refused / failed | clients told (USD) | ledger (USD) | budget | overshoot | "
          "holds after TTL -> after purge | time |")
    print("|---|---|---|---|---|---|---|---|")
    for case in cases():
        if wanted is None or case.name in wanted:
            result = await run_case(case, args.postgres)
            print(show(result), flush=True)
            if result["team_total"] != result["ledger"]:
                print(f"  !! team_totals {result['team_total']} != SUM(requests) {result['ledger']}")


if __name__ == "__main__":
    asyncio.run(main())
