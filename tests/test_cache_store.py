"""The response cache's store: one contract, every backend.

Memory, SQLite (a real ledger file in tmp_path), PostgreSQL (a fresh schema on ``HERMES_TEST_POSTGRES_URL``) and
Redis (a prefix of its own on ``HERMES_TEST_REDIS_URL``, its keys deleted afterwards; savings in a SQLite ledger). The
clock is the test's, moved by hand; ``make()`` opens another "replica" on the same storage (its own ledger and
connection, or its own Redis client).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hermes_proxy.cache.redis_store import RedisCacheStore
from hermes_proxy.cache.store import (
    CachedEntry,
    CacheStore,
    CacheUsage,
    MemoryCacheStore,
    PostgresCacheStore,
    SQLiteCacheStore,
    open_cache_store,
)
from hermes_proxy.config import LedgerConfig
from hermes_proxy.errors import LedgerUnavailable
from hermes_proxy.ledger import open_ledger, sqlite_path
from hermes_proxy.ledger.amounts import from_nanos
from hermes_proxy.ledger.side_stores import PURGE_EVERY
from tests.clocks import Clock
from tests.databases import database_url

REDIS_URL = os.environ.get("HERMES_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="HERMES_TEST_REDIS_URL is not set")
T0 = datetime(2025, 3, 12, 15, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@dataclass
class Harness:
    name: str
    clock: Clock
    #: another store on the same storage (a second replica; with memory, the same store)
    make: Callable[[], Awaitable[CacheStore]]
    #: what cache_savings holds for a request id (None: nothing)
    saved: Callable[[str], Awaitable[Decimal | None]]
    #: the rows kept, expired ones included (None for Redis, whose TTLs delete entries)
    rows: Callable[[], Awaitable[int]] | None = None
    store: Any = None
    closing: list[Any] = field(default_factory=list)

    def entry(self, team: str, key: str, body: str = '{"answer":"é"}', *, ttl: timedelta = HOUR,
              created: datetime | None = None) -> CachedEntry:
        created = created or self.clock()
        return CachedEntry(team=team, key=key, created_at=created, expires_at=created + ttl, body=body)


async def _sqlite_ledger(url: str, closing: list[Any]) -> Any:
    ledger = open_ledger(LedgerConfig(url=url))
    await ledger.start()
    closing.append(ledger)
    return ledger


def _sqlite_saved(url: str) -> Callable[[str], Awaitable[Decimal | None]]:
    async def saved(request_id: str) -> Decimal | None:
        with sqlite3.connect(sqlite_path(url)) as conn:
            row = conn.execute("SELECT saved_usd FROM cache_savings WHERE request_id = ?", (request_id,)).fetchone()
        return None if row is None else from_nanos(row[0])
    return saved


@pytest.fixture(params=["memory", "sqlite", "postgres", pytest.param("redis", marks=needs_redis)])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    clock = Clock(T0)
    closing: list[Any] = []
    kind = request.param
    if kind == "memory":
        memory = MemoryCacheStore(clock)

        async def same() -> CacheStore:
            return memory

        async def memory_saved(request_id: str) -> Decimal | None:
            return memory.savings.get(request_id)

        async def memory_rows() -> int:
            return len(memory._entries)

        made = Harness(kind, clock, same, memory_saved, memory_rows)
        made.store = memory
        yield made
        return
    if kind == "redis":
        assert REDIS_URL is not None
        prefix = f"hermes-test-cache:{uuid.uuid4().hex}:"
        savings_url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
        savings = SQLiteCacheStore((await _sqlite_ledger(savings_url, closing))._worker.run, clock)

        async def redis_replica() -> CacheStore:
            assert REDIS_URL is not None
            store = RedisCacheStore(REDIS_URL, prefix=prefix, timeout_s=5.0, clock=clock, savings=savings)
            closing.insert(0, store)
            return store

        made = Harness(kind, clock, redis_replica, _sqlite_saved(savings_url))
        made.store = await redis_replica()
        try:
            yield made
        finally:
            import redis.asyncio as redis_asyncio

            client = redis_asyncio.from_url(REDIS_URL)
            keys = [k async for k in client.scan_iter(match=prefix + "*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()
            for thing in closing:
                await thing.close()
        return
    async with database_url(kind, tmp_path) as url:

        async def replica() -> CacheStore:
            ledger = await _sqlite_ledger(url, closing)
            if kind == "sqlite":
                return SQLiteCacheStore(ledger._worker.run, clock)
            return PostgresCacheStore(ledger._conn, clock)

        if kind == "sqlite":
            saved = _sqlite_saved(url)

            async def rows() -> int:
                with sqlite3.connect(sqlite_path(url)) as conn:
                    return int(conn.execute("SELECT COUNT(*) FROM response_cache").fetchone()[0])
        else:
            async def fetchval(sql: str, *args: Any) -> Any:
                conn = await asyncpg.connect(url)
                try:
                    return await conn.fetchval(sql, *args)
                finally:
                    await conn.close()

            async def saved(request_id: str) -> Decimal | None:
                value = await fetchval("SELECT saved_usd FROM cache_savings WHERE request_id = $1", request_id)
                return None if value is None else Decimal(value)

            async def rows() -> int:
                return int(await fetchval("SELECT COUNT(*) FROM response_cache"))

        made = Harness(kind, clock, replica, saved, rows)
        made.store = await replica()
        try:
            yield made
        finally:
            for ledger in closing:
                await ledger.close()


def size(body: str) -> int:
    return len(body.encode())


# --- the contract ----------------------------------------------------------------------------------------------------


async def test_get_after_put_and_replace(harness: Harness) -> None:
    store = harness.store
    first = harness.entry("research", "k1", '{"answer":"é"}')
    await store.put(first, max_team_bytes=None)
    assert await store.get("research", "k1") == first
    assert await store.get("research", "k2") is None
    assert await store.usage() == CacheUsage(entries=1, bytes=size(first.body))

    harness.clock.advance(seconds=5)
    second = harness.entry("research", "k1", '{"answer":"a longer answer"}', ttl=2 * HOUR)
    await store.put(second, max_team_bytes=None)
    got = await store.get("research", "k1")
    assert got == second and got.created_at == T0 + timedelta(seconds=5)
    assert got.created_at.utcoffset() == timedelta(0)
    assert await store.usage() == CacheUsage(entries=1, bytes=size(second.body))


async def test_expired_entries_are_not_returned_nor_counted(harness: Harness) -> None:
    store = harness.store
    await store.put(harness.entry("research", "short", '"s"', ttl=timedelta(minutes=30)), max_team_bytes=None)
    await store.put(harness.entry("research", "long", '"long"', ttl=2 * HOUR), max_team_bytes=None)
    harness.clock.advance(minutes=29, seconds=59)
    assert await store.get("research", "short") is not None
    assert await store.usage() == CacheUsage(entries=2, bytes=size('"s"') + size('"long"'))
    harness.clock.advance(seconds=1)  # expires_at <= now: expired
    assert await store.get("research", "short") is None
    assert await store.get("research", "long") is not None
    assert await store.usage() == CacheUsage(entries=1, bytes=size('"long"'))
    assert await store.clear("research") == 1  # only the live one counts


async def test_teams_never_see_each_others_entries(harness: Harness) -> None:
    store = harness.store
    await store.put(harness.entry("research", "same", '"research"'), max_team_bytes=None)
    await store.put(harness.entry("ops", "same", '"ops"'), max_team_bytes=None)
    assert (await store.get("research", "same")).body == '"research"'
    assert (await store.get("ops", "same")).body == '"ops"'
    assert await store.get("support", "same") is None
    assert await store.clear("ops") == 1
    assert (await store.get("research", "same")).body == '"research"'
    assert await store.get("ops", "same") is None


async def test_team_names_with_separators_cannot_reach_another_team(harness: Harness) -> None:
    # naive key names "{prefix}{team}:{key}" would make ("a", "b:c") and ("a:b", "c") one key
    store = harness.store
    await store.put(harness.entry("a", "b:c", '"team a"'), max_team_bytes=None)
    for team, key in [("a:b", "c"), ("a%3Ab", "c"), ("a:b:c", ""), ("a}", "b:c"), ("{a}", "b:c"), ("a", "b")]:
        assert await store.get(team, key) is None, (team, key)
    await store.put(harness.entry("a:b", "c", '"team a:b"'), max_team_bytes=None)
    await store.put(harness.entry("{a}", "b:c", '"team {a}"'), max_team_bytes=None)
    assert (await store.get("a", "b:c")).body == '"team a"'
    assert (await store.get("a:b", "c")).body == '"team a:b"'
    assert (await store.get("{a}", "b:c")).body == '"team {a}"'
    # a cap on one team evicts nothing of the others
    await store.put(harness.entry("a:b", "d", '"x"'), max_team_bytes=size('"x"'))
    assert await store.get("a:b", "c") is None
    assert await store.get("a", "b:c") is not None and await store.get("{a}", "b:c") is not None
    assert await store.clear("a:b") == 1
    assert await store.clear("a") == 1
    assert (await store.get("{a}", "b:c")).body == '"team {a}"'


async def test_the_byte_cap_evicts_the_oldest_and_keeps_the_newest(harness: Harness) -> None:
    store = harness.store
    body = '"12345678"'  # 10 bytes
    await store.put(harness.entry("ops", "other", body), max_team_bytes=None)
    for key in ["k1", "k2", "k3"]:
        harness.clock.advance(seconds=1)
        await store.put(harness.entry("research", key, body), max_team_bytes=25)
    assert await store.get("research", "k1") is None
    assert await store.get("research", "k2") is not None and await store.get("research", "k3") is not None
    assert await store.get("ops", "other") is not None  # another team's entries are not the cap's
    assert await store.usage() == CacheUsage(entries=3, bytes=30)

    # an older created_at does not make the new entry the one to go: it is kept, the oldest others go
    await store.put(harness.entry("research", "k0", body, created=T0), max_team_bytes=25)
    assert await store.get("research", "k0") is not None
    assert await store.get("research", "k2") is None and await store.get("research", "k3") is not None

    # a replaced entry counts at its new size only
    harness.clock.advance(seconds=1)
    await store.put(harness.entry("research", "k3", '"1234"'), max_team_bytes=16)
    assert await store.get("research", "k0") is not None and (await store.get("research", "k3")).body == '"1234"'
    harness.clock.advance(seconds=1)
    await store.put(harness.entry("research", "k4", '"12"'), max_team_bytes=16)  # 10 + 6 + 4 > 16: k0 goes
    assert await store.get("research", "k0") is None
    assert await store.get("research", "k3") is not None and await store.get("research", "k4") is not None
    assert await store.usage() == CacheUsage(entries=3, bytes=10 + 6 + 4)


async def test_expired_entries_do_not_count_against_the_cap(harness: Harness) -> None:
    store = harness.store
    body = '"12345678"'  # 10 bytes
    await store.put(harness.entry("research", "old-live", body, ttl=5 * HOUR), max_team_bytes=None)
    harness.clock.advance(seconds=1)
    await store.put(harness.entry("research", "expiring", body, ttl=timedelta(minutes=1)), max_team_bytes=None)
    harness.clock.advance(minutes=2)
    await store.put(harness.entry("research", "new", body), max_team_bytes=20)
    assert await store.get("research", "old-live") is not None  # 10 + 10 live: nothing to evict
    assert await store.get("research", "new") is not None
    assert await store.usage() == CacheUsage(entries=2, bytes=20)


async def test_usage_and_clear(harness: Harness) -> None:
    store = harness.store
    assert await store.usage() == CacheUsage(entries=0, bytes=0)
    assert await store.clear() == 0
    for team, key, body in [("research", "a", '"1"'), ("research", "b", '"22"'), ("ops", "a", '"333"'),
                            ("ops:eu", "c", '"ü"')]:
        await store.put(harness.entry(team, key, body), max_team_bytes=None)
    assert await store.usage() == CacheUsage(entries=4, bytes=3 + 4 + 5 + 4)
    assert await store.clear("research") == 2
    assert await store.clear("research") == 0
    assert await store.usage() == CacheUsage(entries=2, bytes=5 + 4)
    assert await store.clear("nobody") == 0
    assert await store.clear() == 2
    assert await store.usage() == CacheUsage(entries=0, bytes=0)
    assert await store.get("ops", "a") is None and await store.get("ops:eu", "c") is None
    # and the store works on after a clear
    await store.put(harness.entry("ops", "a", '"back"'), max_team_bytes=10)
    assert (await store.get("ops", "a")).body == '"back"'


async def test_a_saving_is_recorded_once_per_request(harness: Harness) -> None:
    store = harness.store
    await store.record_saving("req_1", Decimal("0.0123"))
    await store.record_saving("req_1", Decimal("5"))
    await store.record_saving("req_2", Decimal("0.0000000004"))  # rounded to the nano-dollar, half-even
    assert await harness.saved("req_1") == Decimal("0.0123")
    assert await harness.saved("req_2") == Decimal(0)
    assert await harness.saved("req_3") is None


async def test_replicas_on_one_storage_see_each_others_entries(harness: Harness) -> None:
    a, b = harness.store, await harness.make()
    body = '"12345678"'
    await a.put(harness.entry("research", "from-a", body), max_team_bytes=None)
    assert (await b.get("research", "from-a")).body == body
    harness.clock.advance(seconds=1)
    await b.put(harness.entry("research", "from-b", body), max_team_bytes=10)  # evicts a's older entry
    assert await a.get("research", "from-a") is None
    assert (await a.get("research", "from-b")).body == body
    assert await a.usage() == CacheUsage(entries=1, bytes=10)
    await b.record_saving("req_b", Decimal("0.5"))
    await a.record_saving("req_b", Decimal("0.7"))
    assert await harness.saved("req_b") == Decimal("0.5")
    assert await a.clear() == 1
    assert await b.get("research", "from-b") is None


async def test_racing_replicas_keep_the_team_within_its_cap(harness: Harness) -> None:
    a, b = harness.store, await harness.make()
    body = '"12345678"'  # 10 bytes

    async def put(store: CacheStore, i: int) -> None:
        await store.put(harness.entry("research", f"k{i:02}", body, created=T0 + timedelta(seconds=i)),
                        max_team_bytes=35)

    await asyncio.gather(*(put(a if i % 2 else b, i) for i in range(20)))
    usage = await a.usage()
    assert usage.entries == usage.bytes // 10 and 10 <= usage.bytes <= 30
    # whatever the interleaving, one more put fills the cap exactly, the new entry in it
    await put(a, 20)
    assert await a.usage() == CacheUsage(entries=3, bytes=30)
    assert await b.get("research", "k20") is not None


async def test_expired_rows_are_purged_at_most_every_ten_minutes(harness: Harness) -> None:
    if harness.rows is None:
        pytest.skip("Redis deletes expired entries by their TTL")
    store = harness.store
    await store.put(harness.entry("research", "a", ttl=HOUR), max_team_bytes=None)  # the first put purges
    harness.clock.advance(hours=2)
    await store.put(harness.entry("ops", "b", ttl=HOUR), max_team_bytes=None)  # due: research's "a" goes
    assert await harness.rows() == 1
    await store.put(harness.entry("ops", "c", ttl=timedelta(minutes=1)), max_team_bytes=None)
    harness.clock.advance(minutes=5)
    await store.put(harness.entry("ops", "d", ttl=HOUR), max_team_bytes=None)  # not due: "c" stays, unseen
    assert await harness.rows() == 3
    assert await store.get("ops", "c") is None
    harness.clock.advance(seconds=PURGE_EVERY.total_seconds() - 5 * 60)
    await store.put(harness.entry("ops", "e", ttl=HOUR), max_team_bytes=None)  # due again: "c" goes
    assert await harness.rows() == 3
    assert await store.usage() == CacheUsage(entries=3, bytes=3 * size('{"answer":"é"}'))


# --- Redis ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("harness", [pytest.param("redis", marks=needs_redis)], indirect=True)
async def test_redis_entries_gone_by_their_ttl_stop_counting(harness: Harness) -> None:
    store, clock = harness.store, harness.clock
    body = '"12345678"'
    await store.put(harness.entry("research", "kept", body, ttl=5 * HOUR), max_team_bytes=None)
    await store.put(harness.entry("research", "brief", body, ttl=timedelta(milliseconds=50)),
                    max_team_bytes=None)
    await asyncio.sleep(0.2)  # Redis deletes "brief"; the test's clock has not moved, the bookkeeping must notice
    assert await store.usage() == CacheUsage(entries=1, bytes=10)
    clock.advance(seconds=1)
    await store.put(harness.entry("research", "new", body), max_team_bytes=20)
    assert await store.get("research", "kept") is not None and await store.get("research", "new") is not None
    # an entry put already expired replaces (deletes) the live one and stores nothing
    await store.put(harness.entry("research", "kept", body, created=T0 - 2 * HOUR), max_team_bytes=None)
    assert await store.get("research", "kept") is None
    assert await store.usage() == CacheUsage(entries=1, bytes=10)


@pytest.mark.parametrize("harness", [pytest.param("redis", marks=needs_redis)], indirect=True)
async def test_redis_keys_all_expire_and_separate_teams(harness: Harness) -> None:
    import redis.asyncio as redis_asyncio

    store = harness.store
    await store.put(harness.entry("a:b", "c"), max_team_bytes=100)
    await store.put(harness.entry("a", "b:c"), max_team_bytes=100)
    prefix = store._prefix
    assert REDIS_URL is not None
    client = redis_asyncio.from_url(REDIS_URL, decode_responses=True)
    try:
        keys = sorted([k async for k in client.scan_iter(match=prefix + "*")])
        ttls = [await client.pttl(k) for k in keys]
    finally:
        await client.aclose()
    assert f"{prefix}{{a%3Ab}}:e:c" in keys and f"{prefix}{{a}}:e:b:c" in keys
    assert len(keys) == 2 * 5 + 1  # per team: the entry and four bookkeeping keys; the set of teams
    assert all(0 < ttl <= 3_600_000 for ttl in ttls), dict(zip(keys, ttls, strict=True))


async def test_redis_savings_without_a_ledger_store_go_nowhere() -> None:
    store = RedisCacheStore("redis://127.0.0.1:1/0", timeout_s=0.5)
    try:
        await store.record_saving("req_1", Decimal("0.1"))  # no Redis needed: nothing is sent
    finally:
        await store.close()


# --- failures and the choice of store --------------------------------------------------------------------------------


async def test_an_unreachable_redis_raises_ledger_unavailable() -> None:
    store = RedisCacheStore("redis://:secret@127.0.0.1:1/0", timeout_s=0.5)
    try:
        with pytest.raises(LedgerUnavailable) as caught:
            await store.get("research", "k")
        assert "secret" not in str(caught.value)
        with pytest.raises(LedgerUnavailable):
            await store.put(CachedEntry("research", "k", T0, T0 + HOUR, "{}"), max_team_bytes=10)
        with pytest.raises(LedgerUnavailable):
            await store.usage()
    finally:
        await store.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_closed_ledger_raises_ledger_unavailable(kind: str, tmp_path: Path) -> None:
    async with database_url(kind, tmp_path) as url:
        ledger = open_ledger(LedgerConfig(url=url))
        await ledger.start()
        store = open_cache_store(ledger, None)
        assert isinstance(store, SQLiteCacheStore if kind == "sqlite" else PostgresCacheStore)
        await store.put(CachedEntry("research", "k", T0, T0 + HOUR, "{}"), max_team_bytes=None)
        await ledger.close()
        with pytest.raises(LedgerUnavailable):
            await store.get("research", "k")
        with pytest.raises(LedgerUnavailable):
            await store.put(CachedEntry("research", "k", T0, T0 + HOUR, "{}"), max_team_bytes=None)


async def test_open_cache_store_picks_the_ledgers_database_or_redis(tmp_path: Path) -> None:
    assert isinstance(open_cache_store(object(), None), MemoryCacheStore)
    ledger = open_ledger(LedgerConfig(url=f"sqlite:///{tmp_path / 'ledger.sqlite3'}"))
    await ledger.start()
    try:
        assert isinstance(open_cache_store(ledger, None), SQLiteCacheStore)
        assert isinstance(open_cache_store(ledger, "http://not-redis"), SQLiteCacheStore)
        for url in ["redis://127.0.0.1:6379/0", "rediss://cache.example:6380/1"]:
            store = open_cache_store(ledger, url)
            assert isinstance(store, RedisCacheStore) and isinstance(store._savings, SQLiteCacheStore)
            await store.close()
        redis_store = open_cache_store(object(), "redis://127.0.0.1:6379/0")
        assert isinstance(redis_store, RedisCacheStore) and isinstance(redis_store._savings, MemoryCacheStore)
        await redis_store.close()
    finally:
        await ledger.close()
