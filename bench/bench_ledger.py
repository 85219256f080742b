"""Ledger overhead per request: µs for one reserve + settle, sequential and with 50 concurrent tasks.

    .venv/bin/python bench/bench_ledger.py [--postgres postgresql://postgres@127.0.0.1:5432/test] [-n 2000]

SQLite runs on a file in a temporary directory; PostgreSQL (when given) in a schema created and dropped here.
The team has daily, monthly and total budgets and the key a limit of its own, so every check the gateway needs runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from hermes_proxy.config import LedgerConfig
from hermes_proxy.ledger import open_ledger
from hermes_proxy.ledger.base import RequestRecord
from policies.types import BudgetRule, TeamPolicy

POLICY = TeamPolicy(
    name="bench",
    budgets=(BudgetRule("daily", Decimal("1e9"), Decimal("1e8")), BudgetRule("monthly", Decimal("1e9")),
             BudgetRule("total", Decimal("1e10"))),
    timezone="Europe/Berlin",
)
COST = Decimal("0.000123")


def _record(team: str, key: Any) -> RequestRecord:
    return RequestRecord(
        request_id=uuid.uuid4().hex, started_at=datetime.now(UTC), team=team, key_id=key.id, key_name=key.name,
        model="hermes-4-405b", route="bench:Hermes-4-405B", reasoning=False, prompt_tokens=100,
        completion_tokens=50, reasoning_tokens=0, cost_usd=COST, estimated=False, status="ok", latency_ms=1.0,
        ttft_ms=0.5,
    )


async def _one(ledger: Any, key: Any) -> tuple[float, float]:
    t0 = time.perf_counter()
    admission = await ledger.reserve(POLICY, key, Decimal("0.01"))
    t1 = time.perf_counter()
    await ledger.settle(admission.hold, _record(POLICY.name, key))
    return t1 - t0, time.perf_counter() - t1


async def bench(label: str, url: str, n: int) -> None:
    ledger = open_ledger(LedgerConfig(url=url))
    await ledger.start()
    try:
        _, key = await ledger.create_key(POLICY.name, "bench", Decimal("1e8"))
        for _ in range(50):  # warm up: statement caches, pool
            await _one(ledger, key)
        t0 = time.perf_counter()
        timings = [await _one(ledger, key) for _ in range(n)]
        sequential = (time.perf_counter() - t0) / n * 1e6
        reserve = statistics.median(r for r, _ in timings) * 1e6
        settle = statistics.median(s for _, s in timings) * 1e6

        async def worker(count: int) -> None:
            for _ in range(count):
                await _one(ledger, key)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(n // 50) for _ in range(50)))
        concurrent = (time.perf_counter() - t0) / (n // 50 * 50) * 1e6
        print(f"{label:<11} sequential {sequential:7.0f} µs/request (median reserve {reserve:.0f} µs, "
              f"settle {settle:.0f} µs)   50 concurrent tasks {concurrent:7.0f} µs/request "
              f"({1e6 / concurrent:,.0f} requests/s)")
        status = await ledger.budget_status(POLICY)
        expected = COST * (n * 2 + 50 + n // 50 * 50 - n)
        assert status[-1].spent_usd == expected, (status[-1].spent_usd, expected)
    finally:
        await ledger.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", metavar="URL", help="also bench PostgreSQL at this URL")
    parser.add_argument("-n", type=int, default=2000, help="requests per run (default 2000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        await bench("sqlite", f"sqlite:///{Path(tmp) / 'ledger.sqlite3'}", args.n)
    await bench("memory", "memory://", args.n)
    if args.postgres:
        import asyncpg

        schema = f"hermes_bench_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(args.postgres)
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            sep = "&" if "?" in args.postgres else "?"
            await bench("postgresql", f"{args.postgres}{sep}search_path={schema}", args.n)
        finally:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
