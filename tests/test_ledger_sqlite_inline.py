"""The SQLite ledger runs the request path's transactions on the event loop, and hands them to its thread when another
process holds the write lock: the request waits for the lock, the loop does not, and no money is lost or doubled."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from hermes_proxy.ledger.base import RequestRecord
from hermes_proxy.ledger.measure import sqlite_placeholders
from hermes_proxy.ledger.queries import INSERT_HOLD, hold_values
from hermes_proxy.ledger.records import HoldInfo, new_hold
from hermes_proxy.ledger.sqlite import SQLiteLedger, worker
from hermes_proxy.ledger.sqlite.statements import CODEC
from policies.types import BudgetRule, TeamPolicy

TEAM = TeamPolicy(name="acme", budgets=(BudgetRule("total", Decimal("10000")),))
COST = Decimal("0.25")


def _record(started_at: datetime) -> RequestRecord:
    return RequestRecord(
        request_id=uuid.uuid4().hex, started_at=started_at, team=TEAM.name, key_id=None, key_name=None,
        model="hermes-4-405b", route="fake:Hermes-4-405B", reasoning=False, prompt_tokens=10, completion_tokens=5,
        reasoning_tokens=0, cost_usd=COST, estimated=False, status="ok", latency_ms=1.0, ttft_ms=None,
    )


async def _ticks_while(work: asyncio.Future[object]) -> float:
    """The longest the event loop went without running a 5 ms ticker while ``work`` ran."""
    longest, last = 0.0, time.monotonic()
    while not work.done():
        await asyncio.sleep(0.005)
        now = time.monotonic()
        longest, last = max(longest, now - last), now
    return longest


def another_process_holds_the_write_lock(path: Path, for_s: float) -> sqlite3.Connection:
    """A connection of "another worker" that takes SQLite's write lock now and commits ``for_s`` later, on the loop
    (so a loop blocked waiting for the lock would never let it go)."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(for_s, other.execute, "COMMIT")
    return other


async def test_a_request_waits_for_another_process_holding_the_write_lock_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = SQLiteLedger(path)
    await ledger.start()
    try:
        first = await ledger.reserve(TEAM, None, Decimal("1"))  # the first admission also bills expired holds
        await ledger.settle(first.hold, _record(datetime.now(UTC)))

        other = another_process_holds_the_write_lock(path, 0.3)
        started = time.monotonic()
        admission = asyncio.ensure_future(ledger.reserve(TEAM, None, Decimal("1")))
        longest_gap = await _ticks_while(admission)
        hold = (await admission).hold
        waited = time.monotonic() - started
        other.close()

        assert waited >= 0.25, "the admission did not wait for the lock another process held"
        assert longest_gap < 0.2, f"the event loop stalled {longest_gap * 1000:.0f} ms waiting for SQLite's lock"
        await ledger.settle(hold, _record(datetime.now(UTC)))
        spent = (await ledger.budget_status(TEAM))[0].spent_usd
        assert spent == 2 * COST
        audit = await ledger.audit()
        assert audit["requests"] == audit["totals"] == {TEAM.name: (2 * COST, 2)}
        assert audit["holds"][0] == 0
    finally:
        await ledger.close()


async def test_a_settle_blocked_by_another_process_is_committed_once_after_the_lock_is_released(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = SQLiteLedger(path)
    await ledger.start()
    try:
        admissions = [await ledger.reserve(TEAM, None, Decimal("1")) for _ in range(3)]
        other = another_process_holds_the_write_lock(path, 0.2)
        await asyncio.gather(*(ledger.settle(a.hold, _record(datetime.now(UTC))) for a in admissions))
        other.close()

        assert (await ledger.budget_status(TEAM))[0].spent_usd == 3 * COST
        assert len(await ledger.requests(team=TEAM.name)) == 3
        audit = await ledger.audit()
        assert audit["requests"] == audit["totals"] == {TEAM.name: (3 * COST, 3)}
        assert audit["holds"][0] == 0
    finally:
        await ledger.close()


async def test_the_write_ahead_log_starts_over_while_requests_run(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Automatic checkpoints are off on the connection the event loop uses; the worker thread checkpoints beside it,
    and once the WAL holds WAL_RESTART_FRAMES it makes the WAL start over. Without that the WAL grows by every page
    every request writes, about 64 KB a request here (96 MB in all); with the thresholds made small, it stays near
    the restart size (500 frames, 2 MB)."""
    monkeypatch.setattr(worker, "CHECKPOINT_EVERY", 64)
    monkeypatch.setattr(worker, "WAL_RESTART_FRAMES", 500)
    path = tmp_path / "ledger.sqlite3"
    ledger = SQLiteLedger(path)
    await ledger.start()
    requests = 1500
    try:
        for _ in range(requests):
            admission = await ledger.reserve(TEAM, None, Decimal("0.001"))
            await ledger.settle(admission.hold, _record(datetime.now(UTC)))
        await asyncio.sleep(0.3)  # the last checkpoint, on the thread
        wal = await asyncio.to_thread(os.path.getsize, f"{path}-wal")
        assert len(await ledger.requests(team=TEAM.name, limit=10_000)) == requests
    finally:
        await ledger.close()
    assert wal < 12e6, f"the WAL grew to {wal / 1e6:.1f} MB over {requests} requests"


async def test_the_write_ahead_log_starts_over_while_two_workers_write_steadily(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two ledgers on one file (two serve workers): the other's writes always leave a frame to copy, so only a
    checkpoint that keeps every writer out lets the WAL start over (with checkpoints that do not, it passed 200 MB in
    6 s here)."""
    monkeypatch.setattr(worker, "CHECKPOINT_EVERY", 64)
    monkeypatch.setattr(worker, "WAL_RESTART_FRAMES", 500)
    path = tmp_path / "ledger.sqlite3"
    first, second = SQLiteLedger(path), SQLiteLedger(path)
    await first.start()
    await second.start()
    stop = time.monotonic() + 4
    settled = 0

    async def client(ledger: SQLiteLedger) -> None:
        nonlocal settled
        while time.monotonic() < stop:
            admission = await ledger.reserve(TEAM, None, Decimal("0.001"))
            await ledger.settle(admission.hold, _record(datetime.now(UTC)))
            settled += 1

    try:
        await asyncio.gather(*(client(ledger) for ledger in (first, second) for _ in range(10)))
        wal = await asyncio.to_thread(os.path.getsize, f"{path}-wal")
        assert len(await first.requests(team=TEAM.name, limit=100_000)) == settled
    finally:
        await first.close()
        await second.close()
    assert wal < 30e6, f"the WAL grew to {wal / 1e6:.0f} MB over {settled} requests, with a restart at 2 MB"


async def test_an_admission_that_must_bill_many_expired_holds_does_not_stall_the_event_loop(tmp_path: Path) -> None:
    """A crashed worker's 20,000 streams leave their holds in the file; the next admission of that team bills them all
    first (so the budget counts them) on the ledger's thread, not on the loop. Billing them on the loop stalled it
    1.9 s here; on the thread, its Python work still competes for the GIL (the loop's longest gap about 0.2 s)."""
    started = datetime(2026, 1, 1, tzinfo=UTC)
    now = [started]
    path = tmp_path / "ledger.sqlite3"
    ledger = SQLiteLedger(path, reservation_ttl_s=60, clock=lambda: now[0])
    await ledger.start()
    try:
        await ledger.reserve(TEAM, None, Decimal("0.001"))  # the first batch also purges every team, on the thread
        crashed = sqlite3.connect(path)  # the other worker, before it died
        crashed.executemany(sqlite_placeholders(INSERT_HOLD), [hold_values(new_hold(
            TEAM, None, Decimal("0.001"), started, timedelta(seconds=60),
            HoldInfo(uuid.uuid4().hex, None, "hermes-4-405b", "fake:Hermes-4-405B", False, started), None),
            started, CODEC) for _ in range(20_000)])
        crashed.commit()
        crashed.close()
        now[0] = started + timedelta(seconds=120)  # past their TTL, before the next purge of every team
        admission = asyncio.ensure_future(ledger.reserve(TEAM, None, Decimal("0.001")))
        longest_gap = await _ticks_while(admission)
        await admission
        audit = await ledger.audit()
        assert audit["requests"][TEAM.name][1] == 20_000  # each expired stream billed once, as an estimate
        assert audit["holds"][0] == 1  # the last admission's; the first one's expired too (no info: dropped)
    finally:
        await ledger.close()
    assert longest_gap < 0.5, f"one admission stalled the event loop {longest_gap * 1000:.0f} ms billing expired holds"
