"""Rate limits in a SQLite file: exact sliding-window logs shared by every process on one host.

For ``serve --workers N`` without Redis (``[rate_limits] url = "sqlite:///path"``): the admits and completions that
arrive together share one ``BEGIN IMMEDIATE`` transaction, so processes sharing the file count every request exactly
once and take its lock once per batch, not once per request. An unusable file lets requests through (logged; budgets
protect the money) and fails ``/readyz``, as Redis does. The file holds the last minute of entries only; it is not
shared across hosts (use Redis for replicas on several machines). Times are the wall clock, the one clock processes
share. The decision is the in-process limiter's (:func:`.scopes.window_state`). Each scope's running count (``rl_counts``)
moves with every entry written or deleted, so an admit costs the same whatever the window holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from hermes_proxy.ledger import sqlite_path
from hermes_proxy.ledger.sqlite.worker import patiently, set_wal, write
from hermes_proxy.ratelimit.base import (
    ALLOWED,
    WINDOW_S,
    RateDecision,
    RateLimiterUnavailable,
    Ticket,
    decide,
)
from hermes_proxy.ratelimit.scopes import ForwardClock, Scope, ScopeState, scopes_for, token_scopes, window_state
from policies.types import TeamPolicy

log = logging.getLogger("hermes_proxy.ratelimit")
T = TypeVar("T")
BUSY_TIMEOUT_MS = 5000
#: every this many admits, entries of every scope that left the window are deleted (a scope's own are at each admit)
_SWEEP_EVERY = 4096
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS rl_requests (scope TEXT NOT NULL, at REAL NOT NULL, id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS rl_requests_scope ON rl_requests (scope, at)",
    "CREATE TABLE IF NOT EXISTS rl_tokens (scope TEXT NOT NULL, at REAL NOT NULL, tokens INTEGER NOT NULL, "
    "id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS rl_tokens_scope ON rl_tokens (scope, at)",
)
#: what each scope's logs hold, kept with every insert and delete: counting the log at each admit would cost as many
#: rows as the window holds (60,000 at 1,000 req/s)
COUNTS = ("CREATE TABLE IF NOT EXISTS rl_counts (scope TEXT PRIMARY KEY, requests INTEGER NOT NULL, "
          "tokens INTEGER NOT NULL)")
_ADD = ("INSERT INTO rl_counts VALUES (?, ?, ?) ON CONFLICT (scope) DO UPDATE SET "
        "requests = requests + excluded.requests, tokens = tokens + excluded.tokens")
_RECOUNT = (
    "DELETE FROM rl_counts",
    "INSERT INTO rl_counts SELECT scope, SUM(r), SUM(t) FROM (SELECT scope, 1 AS r, 0 AS t FROM rl_requests "
    "UNION ALL SELECT scope, 0, tokens FROM rl_tokens) GROUP BY scope",
)


def _key(scope: Scope) -> str:
    return "\x1f".join(scope.ident)


class SQLiteRateLimiter:
    def __init__(self, url: str, *, window_s: float = WINDOW_S, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(sqlite_path(url))
        self._window = window_s
        #: read on the worker thread only, inside a transaction
        self._now = ForwardClock(clock)
        self._ops = 0
        # ticket ids unique across the processes sharing the file
        self._ids = (f"{os.getpid()}-{os.urandom(4).hex()}-{n}" for n in itertools.count(1))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hermes-ratelimit")  # no thread yet
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Future[None] | None = None

    # --- the protocol ---------------------------------------------------------------------------------------------

    async def admit(self, team: TeamPolicy, key_id: str | None, prompt_tokens: int, *,
                    now: float | None = None) -> RateDecision:
        scopes = scopes_for(team, key_id)
        if not scopes:
            return ALLOWED
        done: asyncio.Future[tuple[list[ScopeState], Ticket | None]] = asyncio.get_running_loop().create_future()
        self._pending.append(("admit", (scopes, max(0, prompt_tokens), now), done))
        self._flush_soon()
        try:
            states, ticket = await done
        except RateLimiterUnavailable as exc:  # as with Redis: budgets protect the money, rate limits fail open
            log.warning("rate limits: admitting without them (%s)", exc)
            return ALLOWED
        return decide(states, ticket)

    async def record_completion(self, team: TeamPolicy, key_id: str | None, tokens: int, *,
                                now: float | None = None) -> None:
        scopes = token_scopes(team, key_id, tokens)
        if scopes:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._pending.append(("record", (scopes, now, tokens), done))
            self._flush_soon()
            try:
                await done
            except RateLimiterUnavailable as exc:
                log.warning("rate limits: could not count %d completion tokens (%s)", tokens, exc)

    async def refund(self, team: TeamPolicy, key_id: str | None, ticket: Ticket) -> None:
        scopes = scopes_for(team, key_id)
        if not scopes:
            return
        try:
            await self._run(self._refund, scopes, ticket)
        except RateLimiterUnavailable as exc:  # a lost refund costs the client one slot for a minute
            log.warning("rate limits: could not refund %s (%s)", ticket.id, exc)

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close_connection)
        self._executor.shutdown(wait=True)

    # --- grouping: what arrives while a transaction runs goes into the next one ------------------------------------

    def _flush_soon(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await self._run(self._batch, [(kind, args) for kind, args, _ in batch])
            except Exception as exc:
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (_, _, done), result in zip(batch, results, strict=True):
                if not done.done():
                    done.set_result(result)

    # --- on the worker thread -------------------------------------------------------------------------------------

    def _batch(self, conn: sqlite3.Connection, items: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        """One transaction for the admits and completions that arrived together, in order: under contention between
        processes one lock per batch, not per request."""
        results: list[Any] = []
        with write(conn):  # BEGIN IMMEDIATE: no other process counts in between
            for kind, args in items:
                if kind == "admit":
                    results.append(self._admit(conn, *args))
                else:
                    self._record(conn, *args)
                    results.append(None)
        return results

    def _admit(self, conn: sqlite3.Connection, scopes: list[Scope], tokens: int,
               asked_now: float | None) -> tuple[list[ScopeState], Ticket | None]:
        # inside the batch's transaction, so the clock is read holding the write lock: every entry another process
        # wrote is older
        now = self._now(asked_now)
        cutoff = now - self._window
        ticket = Ticket(next(self._ids), now, tokens)
        states = [self._state(conn, scope, now, cutoff) for scope in scopes]
        admitted = not any(state.refusals for state in states)
        if admitted:
            for scope, state in zip(scopes, states, strict=True):
                logs_request, logs_tokens = state.count(ticket.tokens, self._window)
                key = _key(scope)
                if logs_request:
                    conn.execute("INSERT INTO rl_requests VALUES (?, ?, ?)", (key, now, ticket.id))
                if logs_tokens:
                    conn.execute("INSERT INTO rl_tokens VALUES (?, ?, ?, ?)", (key, now, ticket.tokens, ticket.id))
                if logs_request or logs_tokens:
                    conn.execute(_ADD, (key, int(logs_request), ticket.tokens if logs_tokens else 0))
        self._ops += 1
        if self._ops % _SWEEP_EVERY == 0:
            # every scope's entries that left the window, and the counts recomputed from what is left (exact even if
            # a process of an older version wrote entries without counting them)
            conn.execute("DELETE FROM rl_requests WHERE at <= ?", (cutoff,))
            conn.execute("DELETE FROM rl_tokens WHERE at <= ?", (cutoff,))
            for statement in _RECOUNT:
                conn.execute(statement)
        return states, ticket if admitted else None

    def _state(self, conn: sqlite3.Connection, scope: Scope, now: float, cutoff: float) -> ScopeState:
        """The scope's entries that left the window deleted, then its counters and what refuses."""
        key = _key(scope)
        gone_requests = len(conn.execute("DELETE FROM rl_requests WHERE scope = ? AND at <= ? RETURNING 1",
                                         (key, cutoff)).fetchall())
        gone_tokens = [row[0] for row in conn.execute(
            "DELETE FROM rl_tokens WHERE scope = ? AND at <= ? RETURNING tokens", (key, cutoff))]
        if gone_requests or gone_tokens:
            conn.execute(_ADD, (key, -gone_requests, -sum(gone_tokens)))
        counts = conn.execute("SELECT requests, tokens FROM rl_counts WHERE scope = ?", (key,)).fetchone()
        requests, tokens = (max(0, counts[0]), max(0, counts[1])) if counts is not None else (0, 0)
        # the newest entry: one step down the (scope, at) index, whatever the window holds
        (last_request,) = conn.execute("SELECT MAX(at) FROM rl_requests WHERE scope = ?", (key,)).fetchone()
        (last_tokens,) = conn.execute("SELECT MAX(at) FROM rl_tokens WHERE scope = ?", (key,)).fetchone()

        def request_at(index: int) -> float | None:
            row = conn.execute("SELECT at FROM rl_requests WHERE scope = ? ORDER BY at LIMIT 1 OFFSET ?",
                               (key, index)).fetchone()
            return None if row is None else float(row[0])

        return window_state(scope, now, self._window, requests=requests, last_request=last_request, tokens=tokens,
                            last_tokens=last_tokens, request_at=request_at,
                            token_log=lambda: conn.execute(
                                "SELECT at, tokens FROM rl_tokens WHERE scope = ? ORDER BY at", (key,)))

    def _record(self, conn: sqlite3.Connection, scopes: list[Scope], asked_now: float | None, tokens: int) -> None:
        now = self._now(asked_now)
        conn.executemany("INSERT INTO rl_tokens VALUES (?, ?, ?, '')",
                         [(_key(scope), now, tokens) for scope in scopes])
        conn.executemany(_ADD, [(_key(scope), 0, tokens) for scope in scopes])

    def _refund(self, conn: sqlite3.Connection, scopes: list[Scope], ticket: Ticket) -> None:
        with write(conn):
            for scope in scopes:
                key = _key(scope)
                requests = len(conn.execute("DELETE FROM rl_requests WHERE scope = ? AND id = ? RETURNING 1",
                                            (key, ticket.id)).fetchall())
                tokens = sum(row[0] for row in conn.execute(
                    "DELETE FROM rl_tokens WHERE scope = ? AND id = ? RETURNING tokens", (key, ticket.id)))
                if requests or tokens:
                    conn.execute(_ADD, (key, -requests, -tokens))

    # --- plumbing -------------------------------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, functools.partial(self._call, fn, *args))
        except (sqlite3.Error, OSError, RuntimeError) as exc:  # RuntimeError: used after close
            raise RateLimiterUnavailable(f"rate limits in {self.path}: {exc}") from exc

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            set_wal(conn, BUSY_TIMEOUT_MS / 1000)
            conn.execute("PRAGMA synchronous = NORMAL")
            for statement in SCHEMA:
                conn.execute(statement)
            with write(conn):  # a file an older version wrote has logs but no counts yet: count them once
                if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'rl_counts'").fetchone() is None:
                    conn.execute(COUNTS)
                    for statement in _RECOUNT:
                        conn.execute(statement)
            conn.execute("PRAGMA busy_timeout = 0")  # waiting for the lock: patiently, below
            self._conn = conn
        return patiently(self._conn, fn, args, within_s=BUSY_TIMEOUT_MS / 1000)

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
