"""Several OS processes on one ledger, and a process killed with SIGKILL mid-traffic.

Each worker is a small script run with this interpreter; every run is bounded (request counts and a time cap) and uses
only loopback. PostgreSQL runs use a schema of their own; SQLite runs a file in ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hermes_proxy.config import LedgerConfig
from hermes_proxy.ledger import open_ledger
from policies.types import BudgetRule, TeamPolicy
from tests.databases import database_url

D = Decimal

WORKER = textwrap.dedent('''
    import asyncio, json, random, sys, time
    from datetime import UTC, datetime
    from decimal import Decimal
    from hermes_proxy.config import LedgerConfig
    from hermes_proxy.errors import BudgetExceeded
    from hermes_proxy.ledger import open_ledger
    from hermes_proxy.ledger.base import RequestRecord
    from policies.types import BudgetRule, TeamPolicy

    async def main(url, mode, team, limit, amount, n, concurrency, ttl, start_at, seed, max_seconds, slow_every):
        ledger = open_ledger(LedgerConfig(url=url, reservation_ttl_s=ttl))
        await ledger.start()
        policy = TeamPolicy(name=team, budgets=(BudgetRule("total", Decimal(limit)),))
        amount = Decimal(amount)
        rng = random.Random(seed)
        gate = asyncio.Semaphore(concurrency)
        deadline = time.monotonic() + max_seconds
        print(json.dumps({"ready": True}), flush=True)
        await asyncio.sleep(max(0.0, start_at - time.time()))

        async def hold_one():
            try:
                await ledger.reserve(policy, None, amount)
                return 1
            except BudgetExceeded:
                return 0

        async def request(i):
            async with gate:
                if time.monotonic() > deadline:
                    return
                try:
                    admission = await ledger.reserve(policy, None, amount)
                except BudgetExceeded:
                    return
                # every slow_every-th request takes seconds (a long stream): some holds are always outstanding
                await asyncio.sleep(5.0 if slow_every and i % slow_every == 0 else rng.random() / 100)
                cost = Decimal(rng.randint(1, int(amount * 1000))) / 1000
                record = RequestRecord(
                    request_id=f"{team}-{seed}-{i}", started_at=datetime.now(UTC), team=team, key_id=None,
                    key_name=None, model="hermes-4-405b", route="demo:Hermes-4-405B", reasoning=False,
                    prompt_tokens=10, completion_tokens=20, reasoning_tokens=0, cost_usd=cost, estimated=False,
                    status="ok", latency_ms=1.0, ttft_ms=None)
                await ledger.settle(admission.hold, record)
                print(json.dumps({"settled": record.request_id, "cost": str(cost)}), flush=True)

        if mode == "hold":
            accepted = sum(await asyncio.gather(*(hold_one() for _ in range(n))))
            print(json.dumps({"accepted": accepted}), flush=True)
        else:
            await asyncio.gather(*(request(i) for i in range(n)))
        await ledger.close()
        print(json.dumps({"done": True}), flush=True)

    a = sys.argv[1:]
    asyncio.run(main(a[0], a[1], a[2], a[3], a[4], int(a[5]), int(a[6]), float(a[7]), float(a[8]), int(a[9]),
                     float(a[10]), int(a[11]) if len(a) > 11 else 0))
''')


@pytest.fixture(autouse=True)
def _isolate_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, str(tmp_path / "home" / name.lower()))
    monkeypatch.delenv("HERMES_PROXY_CONFIG", raising=False)


@pytest.fixture(params=["sqlite", "postgres"])
async def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def worker(tmp_path: Path) -> Path:
    path = tmp_path / "ledger_worker.py"
    path.write_text(WORKER)
    return path


async def spawn(worker: Path, *args: Any) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(worker), *map(str, args),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process) -> list[dict[str, Any]]:
    try:
        async with asyncio.timeout(90):
            out, err = await process.communicate()
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    assert process.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


async def opened(url: str, **kwargs: Any) -> Any:
    ledger = open_ledger(LedgerConfig(url=url, **kwargs))
    await ledger.start()
    return ledger


def consistent(audit: dict[str, Any]) -> None:
    for team, summed in audit["requests"].items():
        assert audit["totals"][team] == summed
        assert audit["buckets"][team] == summed


@pytest.mark.slow
async def test_three_processes_never_over_admit(ledger_url: str, worker: Path) -> None:
    # 3 x 70 concurrent reservations of $0.03 against $1.00: exactly 33 fit, whoever wins them
    await (await opened(ledger_url)).close()  # migrate once up front: the race is about admission only
    start_at = time.time() + 2.5
    procs = [await spawn(worker, ledger_url, "hold", "shared", "1.00", "0.03", 70, 70, 600, start_at, seed, 30)
             for seed in range(3)]
    results = [await finish(p) for p in procs]
    accepted = sum(line["accepted"] for lines in results for line in lines if "accepted" in line)
    assert accepted == 33
    ledger = await opened(ledger_url)
    try:
        (status,) = await ledger.budget_status(TeamPolicy("shared", (BudgetRule("total", D("1.00")),)))
        assert status.reserved_usd == D("0.99") and status.spent_usd == 0
    finally:
        await ledger.close()


@pytest.mark.slow
async def test_three_processes_share_a_budget_and_settle_exactly(ledger_url: str, worker: Path) -> None:
    start_at = time.time() + 2.5
    procs = [await spawn(worker, ledger_url, "traffic", "shared", "2.00", "0.05", 100, 20, 600, start_at, seed, 60)
             for seed in range(3)]
    lines = [line for p in procs for line in await finish(p)]
    settled = {line["settled"]: D(line["cost"]) for line in lines if "settled" in line}
    assert settled
    ledger = await opened(ledger_url)
    try:
        (status,) = await ledger.budget_status(TeamPolicy("shared", (BudgetRule("total", D("2.00")),)))
        assert status.spent_usd == sum(settled.values()) <= D("2.00")
        assert status.reserved_usd == 0
        rows = await ledger.requests(team="shared", limit=10_000)
        assert {r.request_id: r.cost_usd for r in rows} == settled
        audit = await ledger.audit()
        consistent(audit)
        assert audit["holds"][0] == 0
    finally:
        await ledger.close()


@pytest.mark.slow
async def test_killed_process_leaves_a_consistent_ledger(ledger_url: str, worker: Path) -> None:
    ttl = 10.0
    proc = await spawn(worker, ledger_url, "traffic", "crash", "1000000", "0.05", 100_000, 20, ttl, 0, 1, 30, 7)
    assert proc.stdout is not None
    settled: dict[str, Decimal] = {}
    try:
        async with asyncio.timeout(60):
            while len(settled) < 40:
                line = await proc.stdout.readline()
                assert line, (await proc.stderr.read()).decode() if proc.stderr else "worker ended"
                data = json.loads(line)
                if "settled" in data:
                    settled[data["settled"]] = D(data["cost"])
        # admissions are grouped (a batch of ~20 commits at once), so wait until holds are outstanding, then kill
        watcher = await opened(ledger_url, reservation_ttl_s=ttl)
        try:
            policy = TeamPolicy("crash", (BudgetRule("total", D("1000000")),))
            for _ in range(2000):
                if (await watcher.budget_status(policy))[0].reserved_usd > 0:
                    os.kill(proc.pid, signal.SIGKILL)  # at once, before those holds settle
                    break
        finally:
            await watcher.close()
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-traffic: ~20 requests in flight, holds outstanding
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # whatever was printed after the kill signal was sent was also settled
    rest = await proc.stdout.read()
    for raw in rest.decode().splitlines():
        try:
            data = json.loads(raw)
        except ValueError:  # the line the kill cut in half
            continue
        if "settled" in data:
            settled[data["settled"]] = D(data["cost"])

    restarted = await opened(ledger_url, reservation_ttl_s=ttl)
    try:
        audit = await restarted.audit()
        consistent(audit)  # no half-written settle: every roll-up matches the rows
        rows = {r.request_id: r.cost_usd for r in await restarted.requests(team="crash", limit=100_000)}
        for request_id, cost in settled.items():  # every settle that returned is there, durably
            assert rows[request_id] == cost
        policy = TeamPolicy("crash", (BudgetRule("total", D("1000000")),))
        (status,) = await restarted.budget_status(policy)
        assert status.spent_usd == sum(c for c in rows.values() if c is not None)
        assert status.reserved_usd > 0  # the requests in flight when it died still hold their reservations...
        later = datetime.now(UTC) + timedelta(seconds=ttl + 1)
        (status,) = await restarted.budget_status(policy, now=later)
        assert status.reserved_usd == 0  # the dead process's holds expired by themselves
        await restarted.release((await restarted.reserve(policy, None, D("0.01"), now=later)).hold)
    finally:
        await restarted.close()
