"""One contract, every backend: SQLite (a real file) and a real PostgreSQL (``HERMES_TEST_POSTGRES_URL``).

Each PostgreSQL test works in a schema of its own, created and dropped here, so runs never see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from hermes_proxy.config import LedgerConfig
from hermes_proxy.errors import AuthenticationError, BudgetExceeded, InvalidRequest, LedgerUnavailable
from hermes_proxy.ledger import open_ledger, sqlite_path
from hermes_proxy.ledger.base import Hold, HoldInfo, KeyRecord, Ledger, Progress, RequestRecord
from hermes_proxy.ledger.migrations import MIGRATIONS
from policies.types import BudgetRule, TeamPolicy
from tests.clocks import Clock

D = Decimal
PG_ENV = "HERMES_TEST_POSTGRES_URL"


@pytest.fixture(autouse=True)
def _isolate_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, str(tmp_path / "home" / name.lower()))
    monkeypatch.delenv("HERMES_PROXY_CONFIG", raising=False)


def with_search_path(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}search_path={schema}"


@dataclass
class Backend:
    name: str
    url: str
    base_url: str | None = None
    schema: str | None = None
    opened: list[Ledger] = field(default_factory=list)

    async def open(self, *, clock: Callable[[], datetime] | None = None, ttl: float = 900.0) -> Any:
        ledger = open_ledger(LedgerConfig(url=self.url, reservation_ttl_s=ttl), clock=clock)
        await ledger.start()
        self.opened.append(ledger)
        return ledger

    async def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Raw SQL straight at the store, bypassing the ledger."""
        if self.name == "postgres":
            conn = await asyncpg.connect(self.url)
            try:
                return [tuple(row) for row in await conn.fetch(sql)]
            finally:
                await conn.close()
        with sqlite3.connect(sqlite_path(self.url)) as conn:
            return conn.execute(sql).fetchall()


async def make_backend(name: str, tmp_path: Path) -> Backend:
    if name == "postgres":
        base = os.environ.get(PG_ENV)
        if not base:
            pytest.skip(f"{PG_ENV} is not set")
        schema = f"hermes_test_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(f'CREATE SCHEMA "{schema}"')
        finally:
            await conn.close()
        return Backend(name, with_search_path(base, schema), base, schema)
    return Backend(name, f"sqlite:///{tmp_path / 'ledger.sqlite3'}")


async def drop_backend(backend: Backend) -> None:
    for ledger in backend.opened:
        await ledger.close()
    if backend.schema and backend.base_url:
        conn = await asyncpg.connect(backend.base_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{backend.schema}" CASCADE')
        finally:
            await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    made = await make_backend(request.param, tmp_path)
    try:
        yield made
    finally:
        await drop_backend(made)


T0 = datetime(2025, 3, 12, 15, 0, tzinfo=UTC)


def team(name: str = "research", *budgets: BudgetRule, tz: str = "UTC", key_limit: Decimal | None = None) -> TeamPolicy:
    return TeamPolicy(name=name, budgets=budgets, timezone=tz, key_limit_usd=key_limit)


def record(
    hold: Hold, cost: Decimal | None, *, started_at: datetime = T0, key: KeyRecord | None = None,
    model: str = "hermes-4-405b", route: str = "demo:Hermes-4-405B", request_id: str | None = None,
    status: str = "ok",
) -> RequestRecord:
    return RequestRecord(
        request_id=request_id or f"req_{uuid.uuid4().hex}", started_at=started_at, team=hold.team,
        key_id=key.id if key else None, key_name=key.name if key else None, model=model, route=route,
        reasoning=True, prompt_tokens=100, completion_tokens=50, reasoning_tokens=20, cost_usd=cost,
        estimated=False, status=status, latency_ms=123.4, ttft_ms=45.6,
    )


async def consistent(ledger: Any) -> dict[str, Any]:
    """Every roll-up equals the SUM over the rows it summarizes; returns the audit."""
    audit = await ledger.audit()
    for team_name, (cost, count) in audit["requests"].items():
        assert audit["totals"][team_name] == (cost, count)
        assert audit["buckets"][team_name] == (cost, count)
    for key_id, (counter, summed) in audit["keys"].items():
        assert counter == summed, key_id
    return audit


# --- lifecycle and migrations ------------------------------------------------------------------------------------------


async def test_migrations_are_named_and_applied_once(backend: Backend) -> None:
    first = await backend.open()
    second = await backend.open()  # a second process starting on the same store
    names = [m.__name__ for m in MIGRATIONS]
    assert await first.migrations() == names
    assert await second.migrations() == names
    rows = await backend.query("SELECT name FROM _hermes_migrations")
    assert sorted(r[0] for r in rows) == sorted(names)
    await first.ping()


async def test_sqlite_uses_wal(tmp_path: Path) -> None:
    backend = await make_backend("sqlite", tmp_path)
    try:
        await backend.open()
        assert (await backend.query("PRAGMA journal_mode"))[0][0] == "wal"
    finally:
        await drop_backend(backend)


async def test_memory_ledger_is_fresh_each_time() -> None:
    for _ in range(2):
        ledger = open_ledger(LedgerConfig(url="memory://"))
        await ledger.start()
        try:
            assert await ledger.list_keys() == []
            await ledger.create_key("research", "one")
        finally:
            await ledger.close()


async def test_unreachable_postgres_is_an_error_not_a_fallback() -> None:
    ledger = open_ledger(LedgerConfig(url="postgresql://hermes:s3cret@127.0.0.1:1/nowhere"))
    with pytest.raises(LedgerUnavailable) as caught:
        await ledger.start()
    message = str(caught.value)
    assert "127.0.0.1:1" in message and "s3cret" not in message
    assert caught.value.status == 503


async def test_unusable_sqlite_path_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    ledger = open_ledger(LedgerConfig(url=f"sqlite:///{blocker / 'ledger.sqlite3'}"))
    with pytest.raises(LedgerUnavailable, match="ledger"):
        await ledger.start()


async def test_not_started_is_an_error(tmp_path: Path) -> None:
    ledger = open_ledger(LedgerConfig(url=f"sqlite:///{tmp_path / 'x.sqlite3'}"))
    with pytest.raises(LedgerUnavailable):
        await ledger.ping()


# --- keys --------------------------------------------------------------------------------------------------------------


async def test_keys_create_verify_list_revoke(backend: Backend) -> None:
    ledger = await backend.open()
    plaintext, created = await ledger.create_key("research", "ci", D("5"))
    assert plaintext.startswith("hp-") and len(plaintext) > 40
    assert created.prefix == plaintext[:10] and created.limit_usd == D("5")
    verified = await ledger.verify_key(plaintext)
    assert verified is not None and verified.id == created.id and verified.team == "research"
    assert await ledger.verify_key(plaintext + "x") is None
    assert await ledger.verify_key("hp-unknown-unknown-unknown") is None
    assert await ledger.verify_key("") is None

    # only the hash is stored
    stored = await backend.query("SELECT key_hash, prefix FROM keys")
    assert all(plaintext not in " ".join(map(str, row)) for row in stored)

    other_plain, other = await ledger.create_key("ops")
    assert other.name == other.id
    assert [k.id for k in await ledger.list_keys()] == [created.id, other.id]
    assert [k.id for k in await ledger.list_keys("ops")] == [other.id]

    revoked = await ledger.revoke_key("ci", team="research")
    assert revoked is not None and revoked.revoked_at is not None
    assert await ledger.verify_key(plaintext) is None  # revoked -> 401 upstream of here
    assert await ledger.verify_key(other_plain) is not None
    assert (await ledger.revoke_key(created.id)).revoked_at == revoked.revoked_at  # idempotent by id
    assert await ledger.revoke_key("ci") is None  # no live key has that name any more
    assert await ledger.revoke_key(other.id, team="research") is None  # wrong team
    listed = {k.id: k for k in await ledger.list_keys()}
    assert listed[created.id].revoked_at is not None


async def test_key_names_unique_among_live_keys(backend: Backend) -> None:
    ledger = await backend.open()
    await ledger.create_key("research", "ci")
    with pytest.raises(InvalidRequest, match="already has a live key named 'ci'"):
        await ledger.create_key("research", "ci")
    await ledger.create_key("ops", "ci")  # another team may
    with pytest.raises(InvalidRequest, match="several teams"):
        await ledger.revoke_key("ci")
    await ledger.revoke_key("ci", team="research")
    await ledger.create_key("research", "ci")  # a revoked name can be used again


async def test_bad_key_input_writes_nothing(backend: Backend) -> None:
    ledger = await backend.open()
    for bad in (D("-1"), "abc", "NaN", "1e999999", True):
        with pytest.raises(InvalidRequest):
            await ledger.create_key("research", "x", bad)
    for name in ("", "key_abc", "a b", "x" * 65):
        with pytest.raises(InvalidRequest):
            await ledger.create_key("research", name)
    assert await ledger.list_keys() == []


# --- reserve, settle, release ------------------------------------------------------------------------------------------


async def test_reserve_settle_release(backend: Backend) -> None:
    clock = Clock(T0)
    ledger = await backend.open(clock=clock)
    policy = team("research", BudgetRule("daily", D("1.00"), D("0.50")), BudgetRule("monthly", D("10")))

    admission = await ledger.reserve(policy, None, D("0.40"))
    assert admission.hold.amount_usd == D("0.40")
    assert admission.remaining_usd == D("0.60")
    assert admission.warning is None
    daily = admission.budgets[0]
    assert (daily.window, daily.spent_usd, daily.reserved_usd, daily.resets_at) == ("daily", 0, D("0.40"),
                                                                                      datetime(2025, 3, 13, tzinfo=UTC))

    second = await ledger.reserve(policy, None, D("0.20"))
    assert second.remaining_usd == D("0.40")
    assert second.warning == "daily soft limit $0.50 passed: $0.60 used of $1.00"

    await ledger.settle(admission.hold, record(admission.hold, D("0.123456789")))
    status = await ledger.budget_status(policy)
    assert status[0].spent_usd == D("0.123456789") and status[0].reserved_usd == D("0.20")
    await ledger.release(second.hold)
    status = await ledger.budget_status(policy)
    assert status[0].reserved_usd == 0 and status[0].remaining_usd == D("0.876543211")
    assert [r.cost_usd for r in await ledger.requests()] == [D("0.123456789")]
    await consistent(ledger)


async def test_refusal_names_team_window_numbers_and_reset(backend: Backend) -> None:
    clock = Clock(datetime(2025, 3, 12, 15, tzinfo=UTC))
    ledger = await backend.open(clock=clock)
    policy = team("research", BudgetRule("daily", D("1")), tz="Europe/Berlin")
    held = await ledger.reserve(policy, None, D("0.70"))
    with pytest.raises(BudgetExceeded) as caught:
        await ledger.reserve(policy, None, D("0.31"))
    error = caught.value
    assert error.status == 429 and error.code == "insufficient_quota"
    for part in ("team 'research'", "daily budget", "$0.70", "$0.31", "limit $1.00",
                 "resets 2025-03-13 00:00 Europe/Berlin"):
        assert part in error.message
    assert error.headers["x-hermes-budget-remaining-usd"] == "0.30"
    assert error.headers["x-hermes-budget-resets-at"] == "2025-03-12T23:00:00+00:00"
    # nothing was written by the refusal: only the first hold exists
    assert len(await backend.query("SELECT id FROM holds")) == 1
    await ledger.reserve(policy, None, D("0.30"))  # exactly up to the limit is fine
    await ledger.release(held.hold)


async def test_settle_is_idempotent_and_once_per_request(backend: Backend) -> None:
    ledger = await backend.open()
    policy = team("research", BudgetRule("total", D("10")))
    admission = await ledger.reserve(policy, None, D("1"))
    row = record(admission.hold, D("0.25"))
    await ledger.settle(admission.hold, row)
    await ledger.settle(admission.hold, row)  # retried settle, hold already gone
    assert len(await ledger.requests()) == 1
    assert (await ledger.budget_status(policy))[0].spent_usd == D("0.25")
    audit = await consistent(ledger)
    assert audit["holds"][0] == 0


async def test_unknown_cost_is_null_never_zero(backend: Backend) -> None:
    ledger = await backend.open()
    policy = team("research", BudgetRule("daily", D("1")))
    admission = await ledger.reserve(policy, None, D("0"))
    await ledger.settle(admission.hold, record(admission.hold, None, route="vllm:unpriced"))
    admission = await ledger.reserve(policy, None, D("0.5"))
    await ledger.settle(admission.hold, record(admission.hold, D("0"), route="demo:free"))
    stored = await backend.query("SELECT route, cost_usd FROM requests ORDER BY route")
    assert [(r, None if c is None else Decimal(c)) for r, c in stored] == [("demo:free", 0), ("vllm:unpriced", None)]
    assert {r.route: r.cost_usd for r in await ledger.requests()} == {"vllm:unpriced": None, "demo:free": D(0)}
    (row,) = await ledger.spend(team="research", by=None, since=None, until=None)
    assert row["requests"] == 2 and row["unknown_cost_requests"] == 1 and row["cost_usd"] == 0


async def test_reservations_expire(backend: Backend) -> None:
    clock = Clock(T0)
    ledger = await backend.open(clock=clock, ttl=60)
    policy = team("research", BudgetRule("daily", D("1")))
    admission = await ledger.reserve(policy, None, D("0.9"))
    assert admission.hold.expires_at == T0 + timedelta(seconds=60)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(policy, None, D("0.2"))
    clock.advance(seconds=59)
    assert (await ledger.budget_status(policy))[0].reserved_usd == D("0.9")
    clock.advance(seconds=2)  # the process holding it is gone: nothing is stuck
    assert (await ledger.budget_status(policy))[0].reserved_usd == 0
    fresh = await ledger.reserve(policy, None, D("1"))
    # a late settle of the expired hold still bills the request
    await ledger.settle(admission.hold, record(admission.hold, D("0.05"), started_at=T0))
    await ledger.release(fresh.hold)
    assert (await ledger.budget_status(policy))[0].spent_usd == D("0.05")


@pytest.mark.parametrize(
    ("tz", "local_midnight_utc"),
    [("America/New_York", datetime(2025, 3, 13, 4, tzinfo=UTC)),  # whole-hour offset: buckets only
     ("Asia/Kolkata", datetime(2025, 3, 12, 18, 30, tzinfo=UTC)),  # half-hour offset: bucket + edge rows
     ("Asia/Kathmandu", datetime(2025, 3, 12, 18, 15, tzinfo=UTC))],
)
async def test_window_edges_in_the_team_zone(backend: Backend, tz: str, local_midnight_utc: datetime) -> None:
    clock = Clock(local_midnight_utc - timedelta(minutes=5))
    ledger = await backend.open(clock=clock)
    policy = team("research", BudgetRule("daily", D("1")), BudgetRule("monthly", D("100")), tz=tz)
    before_at = local_midnight_utc - timedelta(seconds=1)
    after_at = local_midnight_utc + timedelta(seconds=1)
    hold = (await ledger.reserve(policy, None, D("0.6"))).hold
    await ledger.settle(hold, record(hold, D("0.6"), started_at=before_at))

    clock.now = local_midnight_utc + timedelta(seconds=2)
    # yesterday's $0.60 does not count today: $0.70 fits the $1 daily budget
    hold = (await ledger.reserve(policy, None, D("0.7"))).hold
    await ledger.settle(hold, record(hold, D("0.7"), started_at=after_at))

    daily, monthly = await ledger.budget_status(policy, now=before_at)
    assert daily.spent_usd == D("0.6")
    daily, monthly = await ledger.budget_status(policy)
    assert daily.spent_usd == D("0.7") and monthly.spent_usd == D("1.3")
    assert daily.resets_at == local_midnight_utc + timedelta(days=1)
    days = await ledger.spend(team="research", by="day", since=None, until=None, tz=tz)
    assert [(d["group"], d["cost_usd"]) for d in days] == [("2025-03-12", D("0.6")), ("2025-03-13", D("0.7"))]
    with pytest.raises(BudgetExceeded, match="daily budget"):
        await ledger.reserve(policy, None, D("0.31"))
    await consistent(ledger)


async def test_window_sum_covers_a_month_of_buckets(backend: Backend) -> None:
    clock = Clock(datetime(2025, 3, 31, 23, 30, tzinfo=UTC))
    ledger = await backend.open(clock=clock)
    policy = team("research", BudgetRule("weekly", D("1000")), BudgetRule("monthly", D("1000")),
                  BudgetRule("total", D("1000")))
    moments = [datetime(2025, 2, 28, 23, 59, tzinfo=UTC)] + [
        datetime(2025, 3, 1, tzinfo=UTC) + timedelta(hours=7 * i, minutes=i % 60) for i in range(106)
    ]
    for i, moment in enumerate(moments):
        hold = (await ledger.reserve(policy, None, D("1"), now=moment)).hold
        await ledger.settle(hold, record(hold, D("0.01") * (i + 1), started_at=moment))
    weekly, monthly, total = await ledger.budget_status(policy)
    march = [m for m in moments if m.month == 3]
    costs = {m: D("0.01") * (i + 1) for i, m in enumerate(moments)}
    assert monthly.spent_usd == sum(costs[m] for m in march)
    assert weekly.spent_usd == sum(costs[m] for m in march if m >= datetime(2025, 3, 31, tzinfo=UTC))
    assert total.spent_usd == sum(costs.values())


async def test_key_limits_and_revoked_keys(backend: Backend) -> None:
    ledger = await backend.open()
    policy = team("research", BudgetRule("daily", D("100")), key_limit=D("1"))
    _, own_limit = await ledger.create_key("research", "small", D("0.05"))
    _, team_default = await ledger.create_key("research", "default")

    first = await ledger.reserve(policy, own_limit, D("0.03"))
    assert first.budgets[-1].window == "key" and first.remaining_usd == D("0.02")
    with pytest.raises(BudgetExceeded, match="key 'small'"):
        await ledger.reserve(policy, own_limit, D("0.03"))
    await ledger.settle(first.hold, record(first.hold, D("0.01"), key=own_limit))
    second = await ledger.reserve(policy, own_limit, D("0.04"))  # 0.01 spent + 0.04 = the limit
    await ledger.release(second.hold)

    with pytest.raises(BudgetExceeded, match="key 'default'"):
        await ledger.reserve(policy, team_default, D("1.01"))  # the team's key_limit_usd applies
    await ledger.revoke_key("default", team="research")
    with pytest.raises(AuthenticationError):
        await ledger.reserve(policy, team_default, D("0.01"))
    with pytest.raises(ValueError, match="belongs to team"):
        await ledger.reserve(team("ops", BudgetRule("daily", D("1"))), own_limit, D("0.01"))
    await consistent(ledger)


async def test_no_limits_means_no_hold_but_every_request_is_recorded(backend: Backend) -> None:
    ledger = await backend.open()
    policy = team("free")
    admission = await ledger.reserve(policy, None, D("12.5"))
    assert admission.budgets == () and admission.remaining_usd is None and admission.warning is None
    assert await backend.query("SELECT id FROM holds") == []
    await ledger.settle(admission.hold, record(admission.hold, D("1.5")))
    assert (await ledger.spend(team="free", by=None, since=None, until=None))[0]["cost_usd"] == D("1.5")


async def test_bad_amounts_and_records_write_nothing(backend: Backend) -> None:
    ledger = await backend.open()
    policy = team("research", BudgetRule("daily", D("1")))
    for bad in (D("-0.01"), D("NaN"), D("Infinity")):
        with pytest.raises(ValueError):
            await ledger.reserve(policy, None, bad)
    admission = await ledger.reserve(policy, None, D("0.1"))
    with pytest.raises(ValueError):
        await ledger.settle(admission.hold, record(admission.hold, D("-1")))
    with pytest.raises(ValueError, match="status"):
        await ledger.settle(admission.hold, record(admission.hold, D("0.1"), status="fine"))
    with pytest.raises(ValueError, match="timezone-aware"):
        await ledger.reserve(policy, None, D("0.1"), now=datetime(2025, 1, 1))
    assert await ledger.requests() == []
    assert len(await backend.query("SELECT id FROM holds")) == 1


async def test_money_is_exact_to_the_nano_dollar(backend: Backend) -> None:
    ledger = await backend.open()
    policy = team("research", BudgetRule("total", D("1")))
    admission = await ledger.reserve(policy, None, D("0.0000000001"))  # rounds UP to a whole nano-dollar
    assert admission.hold.amount_usd == D("0.000000001")
    await ledger.release(admission.hold)
    for _ in range(10):
        hold = (await ledger.reserve(policy, None, D("0.1"))).hold
        await ledger.settle(hold, record(hold, D("0.1")))  # 10 x 0.1 == 1 exactly, no float drift
    (total,) = await ledger.budget_status(policy)
    assert total.spent_usd == D("1") and total.remaining_usd == 0
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(policy, None, D("0.000000001"))


# --- concurrency -------------------------------------------------------------------------------------------------------


async def test_200_concurrent_reservations_never_pass_the_limit(backend: Backend) -> None:
    ledger = await backend.open(clock=Clock(T0))
    policy = team("research", BudgetRule("daily", D("1.00")), BudgetRule("total", D("5")))
    amount = D("0.03")

    async def reserve_only() -> Any:
        try:
            return await ledger.reserve(policy, None, amount)
        except BudgetExceeded:
            return None

    admissions = await asyncio.gather(*(reserve_only() for _ in range(200)))
    accepted = [a for a in admissions if a is not None]
    assert len(accepted) == 33  # floor(1.00 / 0.03): not one more
    status = (await ledger.budget_status(policy))[0]
    assert status.reserved_usd == D("0.99")
    await asyncio.gather(*(ledger.release(a.hold) for a in accepted))


async def test_200_concurrent_requests_settle_exactly(backend: Backend) -> None:
    ledger = await backend.open(clock=Clock(T0))
    policy = team("research", BudgetRule("daily", D("1.00")), BudgetRule("total", D("5")))
    rng = random.Random(7)
    settled: list[Decimal] = []

    async def one(i: int) -> None:
        try:
            admission = await ledger.reserve(policy, None, D("0.05"))
        except BudgetExceeded:
            return
        await asyncio.sleep(rng.random() / 200)
        cost = D(rng.randint(1, 50)) / 1000  # never above the reservation
        await ledger.settle(admission.hold, record(admission.hold, cost, request_id=f"req_{i}"))
        settled.append(cost)

    await asyncio.gather(*(one(i) for i in range(200)))
    daily, total = await ledger.budget_status(policy)
    assert daily.reserved_usd == 0
    assert daily.spent_usd == sum(settled) <= D("1.00")
    assert total.spent_usd == sum(settled)
    (row,) = await ledger.spend(team="research", by=None, since=None, until=None)
    assert row["cost_usd"] == sum(settled) and row["requests"] == len(settled)
    audit = await consistent(ledger)
    assert audit["holds"][0] == 0


# --- reports -----------------------------------------------------------------------------------------------------------


async def test_spend_groups_filters_and_team_isolation(backend: Backend) -> None:
    ledger = await backend.open()
    research = team("research", BudgetRule("total", D("100")))
    ops = team("ops", BudgetRule("total", D("100")))
    _, ci = await ledger.create_key("research", "ci")
    rows = [
        (research, ci, "hermes-4-405b", "nous:Hermes-4-405B", D("0.10"), datetime(2025, 3, 1, 10, tzinfo=UTC)),
        (research, ci, "hermes-4-70b", "demo:Hermes-4-70B", D("0.02"), datetime(2025, 3, 2, 10, tzinfo=UTC)),
        (research, None, "hermes-4-405b", "vllm:local", None, datetime(2025, 3, 2, 11, tzinfo=UTC)),
        (ops, None, "hermes-4-405b", "nous:Hermes-4-405B", D("5"), datetime(2025, 3, 2, 12, tzinfo=UTC)),
    ]
    for policy, key, model, route, cost, at in rows:
        hold = (await ledger.reserve(policy, key, D("10"), now=at)).hold
        await ledger.settle(hold, record(hold, cost, key=key, model=model, route=route, started_at=at))

    by_team = await ledger.spend(team=None, by=None, since=None, until=None)
    assert [(r["group"], r["requests"], r["cost_usd"]) for r in by_team] == [("ops", 1, D("5")),
                                                                            ("research", 3, D("0.12"))]
    by_model = await ledger.spend(team="research", by="model", since=None, until=None)
    assert {r["group"]: (r["cost_usd"], r["unknown_cost_requests"]) for r in by_model} == {
        "hermes-4-405b": (D("0.10"), 1), "hermes-4-70b": (D("0.02"), 0)}
    by_key = await ledger.spend(team="research", by="key", since=None, until=None)
    assert {r["group"]: r["requests"] for r in by_key} == {"ci": 2, "(no key)": 1}
    assert {r["key_id"] for r in by_key} == {ci.id, None}
    by_route = await ledger.spend(team="research", by="route", since=None, until=None)
    assert {r["group"] for r in by_route} == {"nous:Hermes-4-405B", "demo:Hermes-4-70B", "vllm:local"}
    by_day = await ledger.spend(team="research", by="day", since=datetime(2025, 3, 2, tzinfo=UTC),
                                until=datetime(2025, 3, 3, tzinfo=UTC))
    assert [(r["group"], r["requests"]) for r in by_day] == [("2025-03-02", 2)]
    assert by_day[0]["prompt_tokens"] == 200 and by_day[0]["reasoning_tokens"] == 40
    # a team's report never includes another team's rows
    assert all(r.team == "ops" for r in await ledger.requests(team="ops"))
    assert [r["group"] for r in await ledger.spend(team="ops", by="key", since=None, until=None)] == ["(no key)"]
    newest = await ledger.requests(limit=2)
    assert [r.started_at for r in newest] == [rows[3][5], rows[2][5]]
    assert newest[0].ttft_ms == pytest.approx(45.6) and newest[0].reasoning is True
    with pytest.raises(ValueError, match="cannot group"):
        await ledger.spend(team=None, by="colour", since=None, until=None)


async def test_day_groups_follow_the_zone(backend: Backend) -> None:
    ledger = await backend.open()
    policy = team("research", tz="Asia/Tokyo")
    at = datetime(2025, 3, 1, 20, tzinfo=UTC)  # 05:00 on March 2nd in Tokyo
    hold = (await ledger.reserve(policy, None, D("1"))).hold
    await ledger.settle(hold, record(hold, D("1"), started_at=at))
    assert [r["group"] for r in await ledger.spend(team=None, by="day", since=None, until=None)] == ["2025-03-01"]
    tokyo = await ledger.spend(team=None, by="day", since=None, until=None, tz="Asia/Tokyo")
    assert [r["group"] for r in tokyo] == [at.astimezone(ZoneInfo("Asia/Tokyo")).date().isoformat()]


# --- every cent right: expired holds are billed, a late settle replaces the estimate, learned prices -----------------


def info(request_id: str, *, key: KeyRecord | None = None, started_at: datetime = T0) -> HoldInfo:
    return HoldInfo(request_id=request_id, key_name=key.name if key else None, model="hermes-4-405b",
                    route="nous:Hermes-4-405B", reasoning=True, started_at=started_at)


def rows_by_id(rows: list[RequestRecord]) -> dict[str, RequestRecord]:
    return {r.request_id: r for r in rows}


async def test_checkpoint_extends_and_an_expired_hold_is_billed_from_its_last_progress(backend: Backend) -> None:
    clock = Clock(T0)
    ledger = await backend.open(clock=clock, ttl=60)
    policy = team("research", BudgetRule("daily", D("10")), BudgetRule("total", D("100")))
    _, key = await ledger.create_key("research", "ci", D("5"))
    admission = await ledger.reserve(policy, key, D("1"), info=info("req_crashed", key=key),
                                     progress=Progress(100, 0, 0, D("0.001")))
    hold = admission.hold
    assert hold.expires_at == T0 + timedelta(seconds=60) and hold.info is not None
    clock.advance(seconds=50)
    extended = await ledger.checkpoint(hold, Progress(100, 40, 10, D("0.0123")))
    assert extended.expires_at == T0 + timedelta(seconds=110) and extended.id == hold.id
    clock.advance(seconds=55)  # past the first expiry, not the extended one: still held
    assert (await ledger.budget_status(policy))[0].reserved_usd == D("1")
    clock.advance(seconds=10)  # the process died: no more checkpoints
    assert (await ledger.budget_status(policy))[0].reserved_usd == 0
    assert await ledger.requests() == []

    other = await ledger.reserve(policy, None, D("0.5"))  # the team's next admission bills the expired hold
    billed = rows_by_id(await ledger.requests())["req_crashed"]
    assert (billed.status, billed.estimated, billed.cost_usd) == ("expired", True, D("0.0123"))
    assert (billed.prompt_tokens, billed.completion_tokens, billed.reasoning_tokens) == (100, 40, 10)
    assert (billed.team, billed.key_id, billed.key_name, billed.model, billed.route, billed.reasoning) == (
        "research", key.id, "ci", "hermes-4-405b", "nous:Hermes-4-405B", True)
    assert billed.started_at == T0 and billed.latency_ms == pytest.approx(110_000) and billed.ttft_ms is None
    daily, total = other.budgets  # the admission that billed it already counted it
    assert (daily.spent_usd, daily.reserved_usd) == (D("0.0123"), D("0.5"))
    assert daily.remaining_usd == D("9.4877") and total.spent_usd == D("0.0123")
    (key_status,) = [b for b in await ledger.budget_status(policy, key=key) if b.window == "key"]
    assert key_status.spent_usd == D("0.0123")
    (row,) = await ledger.spend(team="research", by=None, since=None, until=None)
    assert (row["requests"], row["cost_usd"], row["estimated_requests"], row["estimated_cost_usd"]) == (
        1, D("0.0123"), 1, D("0.0123"))
    audit = await consistent(ledger)
    assert audit["holds"][0] == 1  # the new one only


async def test_a_burst_after_an_expired_hold_bills_it_once_and_every_admission_counts_it(backend: Backend) -> None:
    # the admissions of a burst are decided in one batch (one transaction): the expired hold is billed once, before
    # any of them is measured, and each sees the others' holds
    clock = Clock(T0)
    ledger = await backend.open(clock=clock, ttl=60)
    policy = team("research", BudgetRule("daily", D("2")))
    await ledger.reserve(policy, None, D("1"), info=info("req_crashed"), progress=Progress(10, 5, 0, D("0.25")))
    clock.advance(seconds=61)
    results = await asyncio.gather(*(ledger.reserve(policy, None, D("0.5")) for _ in range(5)),
                                   return_exceptions=True)
    admitted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    # $2 - $0.25 billed leaves room for three holds of $0.50, not four
    assert len(admitted) == 3 and len(refused) == 2 and all(isinstance(e, BudgetExceeded) for e in refused)
    rows = await ledger.requests()
    assert [(r.request_id, r.status, r.cost_usd) for r in rows] == [("req_crashed", "expired", D("0.25"))]
    (status,) = await ledger.budget_status(policy)
    assert (status.spent_usd, status.reserved_usd) == (D("0.25"), D("1.5"))
    assert max(a.budgets[0].reserved_usd for a in admitted) == D("1.5")
    assert all(a.budgets[0].spent_usd == D("0.25") for a in admitted)
    audit = await consistent(ledger)
    assert audit["holds"][0] == 3


async def test_expired_holds_billed_by_the_purge_unknown_cost_stays_unknown(backend: Backend) -> None:
    clock = Clock(T0)
    ledger = await backend.open(clock=clock, ttl=60)
    policy = team("research", BudgetRule("daily", D("10")))
    await ledger.reserve(policy, None, D("1"), info=info("req_unpriced"), progress=Progress(7, 3, 0, None))
    await ledger.reserve(policy, None, D("1"), info=info("req_no_progress"))
    await ledger.reserve(policy, None, D("1"))  # no info: dropped when it expires, as before
    clock.advance(seconds=61)
    await backend.open(clock=clock)  # a process starting purges every team's expired holds
    rows = rows_by_id(await ledger.requests())
    assert set(rows) == {"req_unpriced", "req_no_progress"}
    assert (rows["req_unpriced"].cost_usd, rows["req_unpriced"].prompt_tokens,
            rows["req_unpriced"].completion_tokens) == (None, 7, 3)
    assert (rows["req_no_progress"].cost_usd, rows["req_no_progress"].prompt_tokens) == (None, 0)
    assert all(r.status == "expired" and r.estimated for r in rows.values())
    assert await backend.query("SELECT id FROM holds") == []
    (row,) = await ledger.spend(team="research", by=None, since=None, until=None)
    assert (row["requests"], row["unknown_cost_requests"], row["cost_usd"]) == (2, 2, 0)
    await consistent(ledger)


async def test_periodic_purge_bills_another_teams_expired_hold(backend: Backend) -> None:
    clock = Clock(T0)
    ledger = await backend.open(clock=clock, ttl=60)
    research, ops = team("research", BudgetRule("daily", D("10"))), team("ops", BudgetRule("daily", D("10")))
    await ledger.reserve(ops, None, D("0.3"))  # the first admission schedules the purge
    await ledger.reserve(research, None, D("1"), info=info("req_research"), progress=Progress(1, 1, 0, D("0.2")))
    clock.advance(minutes=6)
    await ledger.reserve(ops, None, D("0.1"))  # another team's admission runs the periodic purge
    assert rows_by_id(await ledger.requests())["req_research"].cost_usd == D("0.2")
    assert (await ledger.budget_status(research))[0].spent_usd == D("0.2")


async def test_checkpoint_of_a_hold_that_is_gone_is_a_no_op(backend: Backend) -> None:
    clock = Clock(T0)
    ledger = await backend.open(clock=clock, ttl=60)
    policy = team("research", BudgetRule("daily", D("10")))
    settled = (await ledger.reserve(policy, None, D("1"), info=info("req_a"))).hold
    await ledger.settle(settled, record(settled, D("0.1"), request_id="req_a"))
    released = (await ledger.reserve(policy, None, D("1"), info=info("req_b"))).hold
    await ledger.release(released)
    expired = (await ledger.reserve(policy, None, D("1"), info=info("req_c"))).hold
    clock.advance(seconds=61)
    await ledger.reserve(policy, None, D("0.1"))  # bills req_c
    clock.advance(seconds=1)
    for hold in (settled, released, expired):
        assert await ledger.checkpoint(hold, Progress(1, 2, 3, D("9"))) == hold
    assert len(await backend.query("SELECT id FROM holds")) == 1  # nothing revived
    assert rows_by_id(await ledger.requests())["req_c"].cost_usd is None
    unlimited = (await ledger.reserve(team("free"), None, D("1"))).hold  # no limit, no info: never stored
    assert await ledger.checkpoint(unlimited, Progress(1, 1, 0, D("0.01"))) == unlimited
    with pytest.raises(ValueError):
        await ledger.checkpoint(expired, Progress(-1, 0, 0, None))


async def test_a_late_settle_replaces_the_estimate_exactly_once(backend: Backend) -> None:
    clock = Clock(T0)
    ledger = await backend.open(clock=clock, ttl=60)
    policy = team("research", BudgetRule("daily", D("10")), BudgetRule("total", D("100")))
    _, key = await ledger.create_key("research", "ci")
    hold = (await ledger.reserve(policy, key, D("1"), info=info("req_slow", key=key),
                                 progress=Progress(100, 20, 0, D("0.01")))).hold
    clock.advance(seconds=61)
    await ledger.release((await ledger.reserve(policy, None, D("0.1"))).hold)  # bills the estimate: $0.01
    assert [b.spent_usd for b in await ledger.budget_status(policy)] == [D("0.01"), D("0.01")]

    real = replace(record(hold, D("0.035"), key=key, request_id="req_slow"), latency_ms=61_500.0)
    for _ in range(2):  # the second settle (a retry) changes nothing
        await ledger.settle(hold, real)
        assert [b.spent_usd for b in await ledger.budget_status(policy)] == [D("0.035"), D("0.035")]
    (stored,) = await ledger.requests()
    assert (stored.status, stored.estimated, stored.cost_usd, stored.completion_tokens) == ("ok", False, D("0.035"), 50)
    assert stored.latency_ms == pytest.approx(61_500.0)
    (row,) = await ledger.spend(team="research", by="key", since=None, until=None)
    assert (row["requests"], row["cost_usd"], row["estimated_requests"]) == (1, D("0.035"), 0)
    audit = await consistent(ledger)
    assert audit["totals"]["research"] == (D("0.035"), 1) and audit["keys"][key.id] == (D("0.035"), D("0.035"))

    # a cheaper real cost moves the roll-ups down, an unknown one to zero; in another hour bucket too
    for later_cost, expected in ((D("0.004"), D("0.004")), (None, D(0))):
        rid = f"req_{later_cost}"
        h = (await ledger.reserve(policy, key, D("1"), info=info(rid, key=key),
                                  progress=Progress(1, 1, 0, D("0.02")))).hold
        clock.advance(seconds=61)
        await ledger.release((await ledger.reserve(policy, None, D("0.1"))).hold)
        await ledger.settle(h, record(h, later_cost, key=key, request_id=rid, started_at=T0 + timedelta(hours=1)))
        assert rows_by_id(await ledger.requests())[rid].cost_usd == later_cost
        audit = await consistent(ledger)
        assert audit["totals"]["research"][0] == D("0.035") + (D("0.004") if later_cost is None else 0) + expected
    with pytest.raises(ValueError, match="expired"):
        await ledger.settle(hold, replace(real, status="expired"))


async def test_the_real_settle_wins_over_the_expiry(backend: Backend) -> None:
    clock = Clock(T0)
    ledger = await backend.open(clock=clock, ttl=60)
    policy = team("research", BudgetRule("daily", D("10")))
    first = (await ledger.reserve(policy, None, D("1"), info=info("req_x"))).hold
    # a second hold for the same request (a follow-up call) that will expire
    await ledger.reserve(policy, None, D("1"), info=info("req_x"), progress=Progress(5, 5, 0, D("0.5")))
    clock.advance(seconds=61)
    await ledger.settle(first, record(first, D("0.07"), request_id="req_x"))  # expired, not yet billed: settles
    await ledger.reserve(policy, None, D("0.1"))  # the other hold expires: its request already has its row
    (stored,) = await ledger.requests()
    assert (stored.status, stored.cost_usd) == ("ok", D("0.07"))
    assert (await ledger.budget_status(policy))[0].spent_usd == D("0.07")
    assert len(await backend.query("SELECT id FROM holds")) == 1
    await consistent(ledger)


async def test_a_team_without_limits_still_bills_an_expired_hold_with_info(backend: Backend) -> None:
    clock = Clock(T0)
    ledger = await backend.open(clock=clock, ttl=60)
    free = team("free")
    admission = await ledger.reserve(free, None, D("1"), info=info("req_free"), progress=Progress(1, 0, 0, D("0.3")))
    assert admission.budgets == () and len(await backend.query("SELECT id FROM holds")) == 1
    clock.advance(seconds=61)
    await ledger.reserve(free, None, D("1"))
    await backend.open(clock=clock)
    assert rows_by_id(await ledger.requests())["req_free"].cost_usd == D("0.3")


async def test_learned_prices_scale_holds_and_are_shared_by_replicas(backend: Backend) -> None:
    clock = Clock(T0)
    one, two = await backend.open(clock=clock, ttl=60), await backend.open(clock=clock, ttl=60)
    assert await one.price_factors() == {}
    assert await one.learn_price("nous:Hermes-4-405B", D("1.5")) == D("1.5")
    assert await two.learn_price("nous:Hermes-4-405B", D("1.2")) == D("1.5")  # the highest stays
    assert await two.learn_price("openrouter:hermes", D("1.0000000001")) == D("1.000000001")  # rounded up
    assert await two.learn_price("demo:free", D("0.5")) == 1  # at or below the configured price: confirmed as 1
    assert await one.price_factors() == {"nous:Hermes-4-405B": D("1.5"), "openrouter:hermes": D("1.000000001"),
                                         "demo:free": D(1)}

    policy = team("research", BudgetRule("daily", D("1")))
    admission = await two.reserve(policy, None, D("0.10"), price_keys=["openrouter:hermes", "nous:Hermes-4-405B"],
                                  info=info("req_learned"), progress=Progress(1, 0, 0, D("0.001")))
    assert (admission.price_factor, admission.hold.amount_usd, admission.hold.learned_price) == (D("1.5"), D("0.15"),
                                                                                                True)
    assert admission.remaining_usd == D("0.85")
    plain = await one.reserve(policy, None, D("0.10"), price_keys=["unknown:route"])
    assert (plain.price_factor, plain.hold.amount_usd, plain.hold.learned_price) == (1, D("0.10"), False)
    tiny = await one.reserve(policy, None, D("0.000000003"), price_keys=["nous:Hermes-4-405B"])
    assert tiny.hold.amount_usd == D("0.000000005")  # 4.5 nano-dollars, rounded up
    with pytest.raises(BudgetExceeded):  # 0.50 x 1.5 = 0.75 > the 0.749999995 left
        await one.reserve(policy, None, D("0.50"), price_keys=["nous:Hermes-4-405B"])
    assert (await one.budget_status(policy))[0].reserved_usd == D("0.250000005")
    await one.learn_price("nous:Hermes-4-405B", D("2"))  # a replica learns more: the other applies it at once
    assert (await two.reserve(policy, None, D("0.1"), price_keys=["nous:Hermes-4-405B"])).hold.amount_usd == D("0.2")

    clock.advance(seconds=61)  # the learned-price hold expires: billed, marked learned_price
    await two.reserve(policy, None, D("0"))
    billed = rows_by_id(await one.requests())["req_learned"]
    assert (billed.status, billed.learned_price, billed.cost_usd) == ("expired", True, D("0.001"))
    hold = (await one.reserve(policy, None, D("0.1"))).hold
    await one.settle(hold, replace(record(hold, D("0.02")), learned_price=True))
    (row,) = await one.spend(team="research", by=None, since=None, until=None)
    assert (row["learned_price_requests"], row["learned_price_cost_usd"]) == (2, D("0.021"))
    assert (row["estimated_requests"], row["estimated_cost_usd"]) == (1, D("0.001"))
    assert sum(r.learned_price for r in await two.requests()) == 2


async def test_group_admission_with_info_and_learned_prices(backend: Backend) -> None:
    clock = Clock(T0)
    ledger = await backend.open(clock=clock, ttl=60)
    await ledger.learn_price("nous:Hermes-4-405B", D("2"))
    policy = team("research", BudgetRule("daily", D("1.00")))
    expiring = await ledger.reserve(policy, None, D("0.2"), info=info("req_old"), progress=Progress(1, 1, 0, D("0.1")))
    clock.advance(seconds=61)

    async def one(i: int) -> Any:
        try:
            return await ledger.reserve(policy, None, D("0.03"), info=info(f"req_{i}"),
                                        progress=Progress(10, 0, 0, D("0.001")), price_keys=["nous:Hermes-4-405B"])
        except BudgetExceeded:
            return None

    admissions = [a for a in await asyncio.gather(*(one(i) for i in range(100))) if a is not None]
    assert len(admissions) == 15  # (1.00 - 0.10 billed) / (0.03 x 2)
    assert {(a.price_factor, a.hold.amount_usd) for a in admissions} == {(D("2"), D("0.06"))}
    assert rows_by_id(await ledger.requests())["req_old"].cost_usd == D("0.1")
    assert expiring.hold.id not in {a.hold.id for a in admissions}
    daily = (await ledger.budget_status(policy))[0]
    assert (daily.spent_usd, daily.reserved_usd) == (D("0.1"), D("0.90"))
    await asyncio.gather(*(ledger.settle(a.hold, record(a.hold, D("0.01"), request_id=a.hold.info.request_id))
                           for a in admissions))
    assert (await ledger.budget_status(policy))[0].spent_usd == D("0.25")
    await consistent(ledger)


async def test_memory_ledger_bills_expired_holds() -> None:
    clock = Clock(T0)
    ledger = open_ledger(LedgerConfig(url="memory://", reservation_ttl_s=60), clock=clock)
    await ledger.start()
    try:
        policy = team("research", BudgetRule("daily", D("1")))
        hold = (await ledger.reserve(policy, None, D("0.5"), info=info("req_mem"),
                                     progress=Progress(3, 2, 1, D("0.004")))).hold
        clock.advance(seconds=61)
        await ledger.reserve(policy, None, D("0.1"))
        assert (await ledger.budget_status(policy))[0].spent_usd == D("0.004")
        await ledger.settle(hold, record(hold, D("0.006"), request_id="req_mem"))
        assert (await ledger.budget_status(policy))[0].spent_usd == D("0.006")
        assert [r.status for r in await ledger.requests()] == ["ok"]
    finally:
        await ledger.close()


async def test_settles_racing_the_expiry_billing_count_each_request_once(backend: Backend) -> None:
    clock = Clock(T0)
    billing, settling = await backend.open(clock=clock, ttl=60), await backend.open(clock=clock, ttl=60)
    policy = team("research", BudgetRule("daily", D("100")))
    holds = [(await settling.reserve(policy, None, D("1"), info=info(f"req_{i}"),
                                     progress=Progress(1, 1, 0, D("0.5")))).hold for i in range(40)]
    clock.advance(seconds=61)
    costs = {f"req_{i}": D(i + 1) / 1000 for i in range(40)}

    async def settle(hold: Hold) -> None:
        assert hold.info is not None
        await settling.settle(hold, record(hold, costs[hold.info.request_id], request_id=hold.info.request_id))

    await asyncio.gather(billing.reserve(policy, None, D("0.1")), *(settle(h) for h in holds))
    await billing.reserve(policy, None, D("0.1"))
    rows = await billing.requests()
    assert sorted(r.request_id for r in rows) == sorted(costs) and {r.status for r in rows} == {"ok"}
    assert (await billing.budget_status(policy))[0].spent_usd == sum(costs.values())
    await consistent(billing)
