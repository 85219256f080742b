"""Cached responses, per team and key, until they expire, within a byte cap per team; and what each hit saved.

A small protocol, :class:`CacheStore`, with one implementation per place the answers can live: in the ledger's own
database and on its own connection (the tables come from the ledger migration ``m010_response_cache``):
:class:`SQLiteCacheStore` (files and ``memory://``, on the ledger's worker thread), :class:`PostgresCacheStore` (the
ledger's pool); :class:`MemoryCacheStore` for any other ledger (test fakes); and
:class:`~hermes_proxy.cache.redis_store.RedisCacheStore`, shared by every replica through Redis.

The store knows nothing of what it caches: the key is the caller's digest of everything that changes the answer, the
body the caller's JSON. A team only ever sees its own entries: every read, write and delete is keyed by team and key,
so another team's key is simply not found. The byte cap keeps each team's most recent answers: a put evicts the team's
oldest entries (by ``created_at``, ties by key) until the team's live bytes fit, keeping the new entry unless it alone
is over the cap. Expired entries are never returned nor counted, and are deleted by the next put at most every
:data:`~hermes_proxy.ledger.side_stores.PURGE_EVERY`.

A store that cannot be reached raises :class:`~hermes_proxy.errors.LedgerUnavailable` (the ledger's own connections
already do): the caller treats that as a miss, so an outage of the cache costs money, never an answer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from hermes_proxy.ledger.amounts import cost_amount, from_micros, to_micros, to_nanos
from hermes_proxy.ledger.side_stores import PurgeSchedule, ledger_database
from policies.budget import now_utc

#: expired entries are deleted by the next put at most this often
_COLUMNS = "team, cache_key, created_at, expires_at, size_bytes, body"


@dataclass(frozen=True, slots=True)
class CachedEntry:
    team: str
    #: a hex digest, opaque to the store
    key: str
    #: aware UTC
    created_at: datetime
    expires_at: datetime
    #: JSON text, opaque to the store; its size is ``len(body.encode())``
    body: str


@dataclass(frozen=True, slots=True)
class CacheUsage:
    """The live (unexpired) entries of every team, and their bytes."""

    entries: int
    bytes: int


class CacheStore(Protocol):
    async def get(self, team: str, key: str) -> CachedEntry | None:
        """The team's entry of that key; None when there is none (another team's, expired, evicted, cleared)."""

    async def put(self, entry: CachedEntry, *, max_team_bytes: int | None) -> None:
        """Insert or replace the (team, key) entry; then, with ``max_team_bytes``, evict the team's oldest entries
        until its live bytes fit (the new entry stays unless it alone is over). Expired entries of every team are
        deleted now and then."""

    async def usage(self) -> CacheUsage:
        """Live entries and their bytes, all teams (for the metrics)."""

    async def clear(self, team: str | None = None) -> int:
        """Delete the team's entries (every team's with None); how many live ones were deleted."""

    async def record_saving(self, request_id: str, saved_usd: Decimal) -> None:
        """What the hit of ``request_id`` saved; once per request id (a second call for it changes nothing)."""

    async def close(self) -> None:
        """Release what the store owns (not the ledger's connections: the ledger closes those)."""


def entry_size(entry: CachedEntry) -> int:
    """The bytes an entry counts for against its team's cap: its body, UTF-8 encoded."""
    return len(entry.body.encode())


class MemoryCacheStore(PurgeSchedule):
    """In the process (a ledger with no database of its own); ``savings`` holds what the hits saved."""

    def __init__(self, clock: Callable[[], datetime] = now_utc) -> None:
        super().__init__(clock)
        self._entries: dict[tuple[str, str], CachedEntry] = {}
        self.savings: dict[str, Decimal] = {}

    async def get(self, team: str, key: str) -> CachedEntry | None:
        entry = self._entries.get((team, key))
        return entry if entry is not None and entry.expires_at > self._clock() else None

    async def put(self, entry: CachedEntry, *, max_team_bytes: int | None) -> None:
        now = self._clock()
        if self._purge_due(now):
            for gone in [k for k, e in self._entries.items() if e.expires_at <= now]:
                del self._entries[gone]
        self._entries[(entry.team, entry.key)] = entry
        if max_team_bytes is None:
            return
        live = [e for (team, _), e in self._entries.items() if team == entry.team and e.expires_at > now]
        total = sum(entry_size(e) for e in live)
        # oldest first (ties: the smaller key first), the new entry last: the order the SQL window evicts in
        live.sort(key=lambda e: (e.key == entry.key, e.created_at, e.key))
        for oldest in live:
            if total <= max_team_bytes:
                break
            del self._entries[(oldest.team, oldest.key)]
            total -= entry_size(oldest)

    async def usage(self) -> CacheUsage:
        now = self._clock()
        live = [e for e in self._entries.values() if e.expires_at > now]
        return CacheUsage(entries=len(live), bytes=sum(entry_size(e) for e in live))

    async def clear(self, team: str | None = None) -> int:
        now = self._clock()
        gone = [k for k in self._entries if team is None or k[0] == team]
        live = sum(1 for k in gone if self._entries[k].expires_at > now)
        for k in gone:
            del self._entries[k]
        return live

    async def record_saving(self, request_id: str, saved_usd: Decimal) -> None:
        self.savings.setdefault(request_id, cost_amount(saved_usd))

    async def close(self) -> None:
        return None


# --- SQLite ---------------------------------------------------------------------------------------------------------

# The team's live rows, the new entry first then newest first (ties: the greater key first), each with the bytes kept
# up to and including it: the rows past the cap are the oldest ones that do not fit.
_SQLITE_EVICT = """DELETE FROM response_cache WHERE team = ?1 AND cache_key IN (
    SELECT cache_key FROM (
        SELECT cache_key, SUM(size_bytes) OVER (
            ORDER BY cache_key = ?2 DESC, created_at DESC, cache_key DESC ROWS UNBOUNDED PRECEDING) AS kept
        FROM response_cache WHERE team = ?1 AND expires_at > ?3)
    WHERE kept > ?4)"""
_UPSERT = """ON CONFLICT (team, cache_key) DO UPDATE SET created_at = excluded.created_at,
    expires_at = excluded.expires_at, size_bytes = excluded.size_bytes, body = excluded.body"""


class SQLiteCacheStore(PurgeSchedule):
    """In the SQLite ledger's file, on its worker thread (``run`` is the worker's: ``fn(conn, *args)`` there, SQLite
    errors raised as ``LedgerUnavailable``). A put is one ``BEGIN IMMEDIATE`` transaction (purge, replace, evict), so
    processes sharing the file never see a team half-evicted."""

    def __init__(self, run: Callable[..., Awaitable[Any]], clock: Callable[[], datetime] = now_utc) -> None:
        super().__init__(clock)
        self._run = run

    async def get(self, team: str, key: str) -> CachedEntry | None:
        row = await self._run(lambda conn: conn.execute(
            "SELECT created_at, expires_at, body FROM response_cache WHERE team = ? AND cache_key = ? "
            "AND expires_at > ?", (team, key, to_micros(self._clock()))).fetchone())
        return None if row is None else CachedEntry(team, key, from_micros(row[0]), from_micros(row[1]), row[2])

    async def put(self, entry: CachedEntry, *, max_team_bytes: int | None) -> None:
        now = self._clock()
        values = (entry.team, entry.key, to_micros(entry.created_at), to_micros(entry.expires_at), entry_size(entry),
                  entry.body)
        await self._run(_sqlite_put, values, to_micros(now), self._purge_due(now), max_team_bytes)

    async def usage(self) -> CacheUsage:
        entries, size = await self._run(lambda conn: conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM response_cache WHERE expires_at > ?",
            (to_micros(self._clock()),)).fetchone())
        return CacheUsage(entries=int(entries), bytes=int(size))

    async def clear(self, team: str | None = None) -> int:
        return int(await self._run(_sqlite_clear, team, to_micros(self._clock())))

    async def record_saving(self, request_id: str, saved_usd: Decimal) -> None:
        nanos = to_nanos(cost_amount(saved_usd))
        await self._run(lambda conn: conn.execute(
            "INSERT INTO cache_savings (request_id, saved_usd) VALUES (?, ?) ON CONFLICT (request_id) DO NOTHING",
            (request_id, nanos)))

    async def close(self) -> None:
        return None  # the connection is the ledger's


def _sqlite_put(conn: sqlite3.Connection, values: tuple[Any, ...], now: int, purge: bool, cap: int | None) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        if purge:
            conn.execute("DELETE FROM response_cache WHERE expires_at <= ?", (now,))
        conn.execute(f"INSERT INTO response_cache ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) {_UPSERT}", values)
        if cap is not None:
            conn.execute(_SQLITE_EVICT, (values[0], values[1], now, cap))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _sqlite_clear(conn: sqlite3.Connection, team: str | None, now: int) -> int:
    where, args = ("team = ? AND ", (team,)) if team is not None else ("", ())
    conn.execute("BEGIN IMMEDIATE")
    try:
        live = conn.execute(f"DELETE FROM response_cache WHERE {where}expires_at > ?", (*args, now)).rowcount
        conn.execute(f"DELETE FROM response_cache WHERE {where}expires_at <= ?", (*args, now))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return int(live)


# --- PostgreSQL -----------------------------------------------------------------------------------------------------

_PG_EVICT = """DELETE FROM response_cache WHERE team = $1 AND cache_key IN (
    SELECT cache_key FROM (
        SELECT cache_key, SUM(size_bytes) OVER (
            ORDER BY cache_key = $2 DESC, created_at DESC, cache_key DESC ROWS UNBOUNDED PRECEDING) AS kept
        FROM response_cache WHERE team = $1 AND expires_at > $3) AS ranked
    WHERE kept > $4)"""
# Two 32-bit keys: a key space apart from the ledger's one 64-bit key per team, so a put never waits on an admission.
_PG_TEAM_LOCK = ("SELECT pg_advisory_xact_lock(hashtext('hermes_proxy.cache'), "
                 "hashtext(COALESCE(current_schema(), '') || '.' || $1))")


class PostgresCacheStore(PurgeSchedule):
    """In the PostgreSQL ledger's database, on its pool (``connection()`` is the ledger's: a pooled connection whose
    failures are ``LedgerUnavailable``). A put is one transaction; with a cap it first takes the team's advisory
    transaction lock, so replicas putting for one team at once evict in turn, each seeing the other's rows (READ
    COMMITTED gives every statement a fresh snapshot), and the team never ends over its cap."""

    def __init__(self, connection: Callable[[], AbstractAsyncContextManager[Any]],
                 clock: Callable[[], datetime] = now_utc) -> None:
        super().__init__(clock)
        self._connection = connection

    async def get(self, team: str, key: str) -> CachedEntry | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "SELECT created_at, expires_at, body FROM response_cache WHERE team = $1 AND cache_key = $2 "
                "AND expires_at > $3", team, key, self._clock())
        return None if row is None else CachedEntry(team, key, row[0], row[1], row[2])

    async def put(self, entry: CachedEntry, *, max_team_bytes: int | None) -> None:
        now = self._clock()
        async with self._connection() as conn, conn.transaction():
            if max_team_bytes is not None:
                await conn.execute(_PG_TEAM_LOCK, entry.team)
            if self._purge_due(now):
                await conn.execute("DELETE FROM response_cache WHERE expires_at <= $1", now)
            await conn.execute(f"INSERT INTO response_cache ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) {_UPSERT}",
                               entry.team, entry.key, entry.created_at, entry.expires_at, entry_size(entry),
                               entry.body)
            if max_team_bytes is not None:
                await conn.execute(_PG_EVICT, entry.team, entry.key, now, max_team_bytes)

    async def usage(self) -> CacheUsage:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM response_cache WHERE expires_at > $1",
                self._clock())
        return CacheUsage(entries=int(row[0]), bytes=int(row[1]))

    async def clear(self, team: str | None = None) -> int:
        async with self._connection() as conn:
            live = await conn.fetchval(
                "WITH gone AS (DELETE FROM response_cache WHERE $1::text IS NULL OR team = $1 RETURNING expires_at) "
                "SELECT COUNT(*) FILTER (WHERE expires_at > $2) FROM gone", team, self._clock())
        return int(live)

    async def record_saving(self, request_id: str, saved_usd: Decimal) -> None:
        amount = cost_amount(saved_usd)
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO cache_savings (request_id, saved_usd) VALUES ($1, $2) ON CONFLICT (request_id) DO NOTHING",
                request_id, amount)

    async def close(self) -> None:
        return None  # the pool is the ledger's


# --- choosing one ---------------------------------------------------------------------------------------------------


def database_cache_store(ledger: object) -> CacheStore:
    """The store in ``ledger``'s database (its own connection), or in memory for a ledger without one."""
    run, connection = ledger_database(ledger)
    if run is not None:
        return SQLiteCacheStore(run)
    if connection is not None:
        return PostgresCacheStore(connection)
    return MemoryCacheStore()


def open_cache_store(ledger: object, url: str | None) -> CacheStore:
    """The cache in Redis when ``url`` is a ``redis://`` or ``rediss://`` URL (shared by every replica; the savings
    still go to the ledger's database, where the spend report sums them), else in the ledger's database."""
    in_database = database_cache_store(ledger)
    if url is not None and url.startswith(("redis://", "rediss://")):
        from hermes_proxy.cache.redis_store import RedisCacheStore

        return RedisCacheStore(url, savings=in_database)
    return in_database
