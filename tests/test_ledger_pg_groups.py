"""PostgreSQL group admission: a burst of concurrent reservations shares few transactions and decides exactly as
one transaction each would (budget windows, key limits, learned prices, a hold expiring between two admissions)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from hermes_proxy.config import LedgerConfig
from hermes_proxy.errors import BudgetExceeded
from hermes_proxy.ledger import open_ledger
from hermes_proxy.ledger.records import HoldInfo, Progress
from policies.types import BudgetRule, TeamPolicy
from tests.databases import fresh_postgres_url

D = Decimal
T0 = datetime(2025, 3, 12, 15, 0, tzinfo=UTC)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_postgres_url() as url:
        yield url


async def _open(url: str, clock: Any = None, ttl: float = 900.0) -> Any:
    ledger = open_ledger(LedgerConfig(url=url, reservation_ttl_s=ttl), clock=clock)
    await ledger.start()
    return ledger


async def _try(coro: Any) -> Any:
    try:
        return await coro
    except BudgetExceeded:
        return None


async def test_a_burst_is_grouped_and_decides_as_sequential_admission(pg_url: str) -> None:
    ledger = await _open(pg_url)
    try:
        await ledger.learn_price("nous:Hermes-4-405B", D("1.5"))

        async def run(suffix: str, grouped: bool) -> tuple[list[bool], int]:
            policy = TeamPolicy(name=f"research{suffix}", key_limit_usd=D("1.00"),
                                budgets=(BudgetRule("daily", D("3.00")), BudgetRule("total", D("9"))))
            other = TeamPolicy(name=f"design{suffix}", budgets=(BudgetRule("monthly", D("0.50")),))
            _, key = await ledger.create_key(policy.name, "ci")
            calls = []
            for i in range(150):
                if i % 3 == 2:
                    calls.append(lambda: ledger.reserve(other, None, D("0.07")))
                elif i % 3 == 1:
                    calls.append(lambda: ledger.reserve(policy, key, D("0.10"), price_keys=["nous:Hermes-4-405B"]))
                else:
                    calls.append(lambda: ledger.reserve(policy, None, D("0.10")))
            before = ledger._admissions.transactions
            if grouped:
                results = await asyncio.gather(*(_try(call()) for call in calls))
            else:
                results = [await _try(call()) for call in calls]
            assert {r.hold.amount_usd for r in results if r is not None and r.hold.key_id} == {D("0.15")}
            return [r is not None for r in results], ledger._admissions.transactions - before

        sequential, one_each = await run("_seq", grouped=False)
        grouped, transactions = await run("_grp", grouped=True)
        assert one_each == 150 and transactions < 15, transactions
        assert grouped == sequential  # the same decision for every request, in order
        # key: 1.00 / 0.15 -> 6 holds; team day: 3.00 - 0.90 -> 21 more of 0.10; the other team: 7 of 0.07
        assert (sum(grouped[1::3]), sum(grouped[0::3]), sum(grouped[2::3])) == (6, 21, 7)
    finally:
        await ledger.close()


@pytest.mark.parametrize("grouped", [False, True])
async def test_a_hold_expiring_inside_a_batch_is_held_for_the_first_and_billed_for_the_second(
    pg_url: str, grouped: bool,
) -> None:
    clock = type("Clock", (), {"now": T0, "__call__": lambda self: self.now})()
    ledger = await _open(pg_url, clock=clock, ttl=60)
    try:
        policy = TeamPolicy(name="research", budgets=(BudgetRule("daily", D("1.00")),))
        info = HoldInfo("req_old", None, "hermes-4-405b", "demo:Hermes-4-405B", False, T0)
        await ledger.reserve(policy, None, D("0.5"), info=info, progress=Progress(5, 5, 0, D("0.05")))
        first = ledger.reserve(policy, None, D("0.6"), now=T0 + timedelta(seconds=59.999))  # 0.5 held: refused
        second = ledger.reserve(policy, None, D("0.9"), now=T0 + timedelta(seconds=60))  # 0.05 billed: admitted
        before = ledger._admissions.transactions
        if grouped:
            results = await asyncio.gather(_try(first), _try(second))
            assert ledger._admissions.transactions - before == 1
        else:
            results = [await _try(first), await _try(second)]
        assert results[0] is None and results[1] is not None
        day = (await ledger.budget_status(policy, now=T0 + timedelta(seconds=60)))[0]
        assert (day.spent_usd, day.reserved_usd) == (D("0.05"), D("0.9"))
    finally:
        await ledger.close()
