"""The durable outbox of budget alerts, in the ledger's own database (table ``budget_alerts``, ledger migration
``m009_budget_alerts``), next to the ledger like the response store.

The request path only ever :meth:`AlertStore.add` rows (``INSERT ... ON CONFLICT DO NOTHING`` on the unique dedup key,
so an alert inserted by two replicas at once, or again after a restart, is one row). Senders :meth:`~AlertStore.claim`
the rows that are due: on PostgreSQL ``FOR UPDATE SKIP LOCKED`` and a lease (``claimed_until``), on SQLite the lease
inside a ``BEGIN IMMEDIATE`` transaction; a claimed row is not due again until its lease ends, so two senders never
post the same alert at once, and one that died mid-post leaves it to be sent again when the lease ends (at least once).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from hermes_proxy.ledger.amounts import from_micros, to_micros
from hermes_proxy.ledger.side_stores import ledger_database


@dataclass(frozen=True, slots=True)
class Alert:
    """One webhook post to make: ``body`` is the JSON text sent, as it will be sent."""

    dedup_key: str
    team: str
    event: str
    url: str
    body: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Claimed:
    dedup_key: str
    team: str
    url: str
    body: str
    #: attempts so far, this one included
    attempts: int


@dataclass(frozen=True, slots=True)
class AlertRow:
    """A row as stored (for tests and reports)."""

    dedup_key: str
    team: str
    event: str
    url: str
    body: str
    attempts: int
    sent_at: datetime | None
    last_error: str | None


class AlertStore(Protocol):
    async def add(self, alerts: list[Alert]) -> int:
        """Insert the alerts not stored yet (by dedup key); the number inserted."""
        ...

    async def claim(self, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
        """Up to ``limit`` unsent alerts due at ``now``, each leased until ``now + lease`` (not due again before)."""
        ...

    async def sent(self, dedup_key: str, now: datetime) -> None: ...

    async def failed(self, dedup_key: str, retry_at: datetime, error: str) -> None: ...

    async def rows(self) -> list[AlertRow]: ...


class MemoryAlertStore:
    """In the process (a ledger with no database of its own: test fakes)."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}

    async def add(self, alerts: list[Alert]) -> int:
        added = 0
        for a in alerts:
            if a.dedup_key not in self._rows:
                self._rows[a.dedup_key] = {"alert": a, "attempts": 0, "due": a.created_at, "sent_at": None,
                                           "error": None}
                added += 1
        return added

    async def claim(self, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
        due = [r for r in self._rows.values() if r["sent_at"] is None and r["due"] <= now][:limit]
        for r in due:
            r["due"], r["attempts"] = now + lease, r["attempts"] + 1
        return [Claimed(r["alert"].dedup_key, r["alert"].team, r["alert"].url, r["alert"].body, r["attempts"])
                for r in due]

    async def sent(self, dedup_key: str, now: datetime) -> None:
        self._rows[dedup_key]["sent_at"] = now

    async def failed(self, dedup_key: str, retry_at: datetime, error: str) -> None:
        self._rows[dedup_key].update(due=retry_at, error=error)

    async def rows(self) -> list[AlertRow]:
        return [AlertRow(r["alert"].dedup_key, r["alert"].team, r["alert"].event, r["alert"].url, r["alert"].body,
                         r["attempts"], r["sent_at"], r["error"]) for r in self._rows.values()]


_INSERT = ("INSERT INTO budget_alerts (dedup_key, team, event, url, body, created_at, claimed_until) "
           "VALUES ({}) ON CONFLICT (dedup_key) DO NOTHING")
_ROWS = "SELECT dedup_key, team, event, url, body, attempts, sent_at, last_error FROM budget_alerts ORDER BY created_at"


class SQLiteAlertStore:
    """In the SQLite ledger's file, on its worker thread (``run`` is the worker's: ``fn(conn, *args)`` there)."""

    def __init__(self, run: Callable[..., Awaitable[Any]]) -> None:
        self._run = run

    async def add(self, alerts: list[Alert]) -> int:
        values = [(a.dedup_key, a.team, a.event, a.url, a.body, to_micros(a.created_at), to_micros(a.created_at))
                  for a in alerts]
        return int(await self._run(_sqlite_add, values))

    async def claim(self, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
        rows = await self._run(_sqlite_claim, to_micros(now), to_micros(now + lease), limit)
        return [Claimed(*row) for row in rows]

    async def sent(self, dedup_key: str, now: datetime) -> None:
        await self._run(_sqlite_write, "UPDATE budget_alerts SET sent_at = ?, last_error = NULL WHERE dedup_key = ?",
                        (to_micros(now), dedup_key))

    async def failed(self, dedup_key: str, retry_at: datetime, error: str) -> None:
        await self._run(_sqlite_write,
                        "UPDATE budget_alerts SET claimed_until = ?, last_error = ? WHERE dedup_key = ? "
                        "AND sent_at IS NULL", (to_micros(retry_at), error[:500], dedup_key))

    async def rows(self) -> list[AlertRow]:
        rows = await self._run(lambda conn: conn.execute(_ROWS).fetchall())
        return [AlertRow(row[0], row[1], row[2], row[3], row[4], row[5], None if row[6] is None else from_micros(row[6]),
                         row[7]) for row in rows]


def _sqlite_write(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(sql, params)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _sqlite_add(conn: sqlite3.Connection, values: list[tuple[Any, ...]]) -> int:
    conn.execute("BEGIN IMMEDIATE")
    try:
        added = sum(conn.execute(_INSERT.format(", ".join("?" * 7)), v).rowcount for v in values)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return added


def _sqlite_claim(conn: sqlite3.Connection, now: int, until: int, limit: int) -> list[tuple[Any, ...]]:
    # BEGIN IMMEDIATE takes the write lock first: no other process claims between this SELECT and the UPDATE
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows = conn.execute(
            "SELECT dedup_key, team, url, body, attempts + 1 FROM budget_alerts "
            "WHERE sent_at IS NULL AND claimed_until <= ? ORDER BY claimed_until LIMIT ?", (now, limit)).fetchall()
        conn.executemany("UPDATE budget_alerts SET claimed_until = ?, attempts = attempts + 1 WHERE dedup_key = ?",
                         [(until, row[0]) for row in rows])
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return [tuple(row) for row in rows]


class PostgresAlertStore:
    """In the PostgreSQL ledger's database, on its pool (``connection()`` is the ledger's)."""

    def __init__(self, connection: Callable[[], AbstractAsyncContextManager[Any]]) -> None:
        self._connection = connection

    async def add(self, alerts: list[Alert]) -> int:
        added = 0
        async with self._connection() as conn, conn.transaction():
            for a in alerts:
                status = await conn.execute(_INSERT.format("$1, $2, $3, $4, $5, $6, $6"),
                                            a.dedup_key, a.team, a.event, a.url, a.body, a.created_at)
                added += status.endswith(" 1")
        return added

    async def claim(self, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "UPDATE budget_alerts SET claimed_until = $2, attempts = attempts + 1 WHERE dedup_key IN ("
                " SELECT dedup_key FROM budget_alerts WHERE sent_at IS NULL AND claimed_until <= $1"
                " ORDER BY claimed_until LIMIT $3 FOR UPDATE SKIP LOCKED)"
                " RETURNING dedup_key, team, url, body, attempts", now, now + lease, limit)
        return [Claimed(*tuple(row)) for row in rows]

    async def sent(self, dedup_key: str, now: datetime) -> None:
        async with self._connection() as conn:
            await conn.execute("UPDATE budget_alerts SET sent_at = $1, last_error = NULL WHERE dedup_key = $2",
                               now, dedup_key)

    async def failed(self, dedup_key: str, retry_at: datetime, error: str) -> None:
        async with self._connection() as conn:
            await conn.execute("UPDATE budget_alerts SET claimed_until = $1, last_error = $2 WHERE dedup_key = $3 "
                               "AND sent_at IS NULL", retry_at, error[:500], dedup_key)

    async def rows(self) -> list[AlertRow]:
        async with self._connection() as conn:
            rows = await conn.fetch(_ROWS)
        return [AlertRow(*tuple(row)) for row in rows]


def open_alert_store(ledger: object) -> AlertStore:
    """The outbox in ``ledger``'s database, or in memory for a ledger without one."""
    run, connection = ledger_database(ledger)
    if run is not None:
        return SQLiteAlertStore(run)
    if connection is not None:
        return PostgresAlertStore(connection)
    return MemoryAlertStore()
