"""Stored responses (``store: true``): the Response object and the conversation items before its output, per team,
until they expire (``[responses] store_days``).

A small protocol, :class:`ResponseStore`, with one implementation per ledger backend, in the ledger's own database
and on its own connection (the table comes from the ledger migration ``m008_stored_responses``):
:class:`SQLiteResponseStore` (files and ``memory://``, on the ledger's worker thread), :class:`PostgresResponseStore`
(the ledger's pool), and :class:`MemoryResponseStore` for any other ledger (test fakes). A team only ever sees its own
responses: every read and delete is keyed by team and id, so another team's id is simply not found.

Each stored response carries the whole conversation before its output (what ``previous_response_id`` continues), so
a chain never depends on its earlier links: deleting or outliving one of them breaks nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from hermes_proxy.ledger.amounts import from_micros, to_micros
from hermes_proxy.ledger.side_stores import PurgeSchedule, ledger_database
from policies.budget import now_utc

_COLUMNS = "id, team, created_at, expires_at, response, input_items"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    team: str
    created_at: datetime
    expires_at: datetime
    response: dict[str, Any]
    #: the conversation before the output: the previous response's items and output, then this request's input
    input_items: list[dict[str, Any]]

    @property
    def conversation(self) -> list[dict[str, Any]]:
        """What a response chained to this one continues: its input items, then its output."""
        return [*self.input_items, *self.response.get("output", [])]


class ResponseStore(Protocol):
    async def put(self, stored: StoredResponse) -> None:
        """Keep ``stored`` until its ``expires_at`` (and delete expired ones now and then)."""

    async def get(self, team: str, response_id: str) -> StoredResponse | None:
        """The team's response of that id, None when there is none (another team's, expired, deleted)."""

    async def delete(self, team: str, response_id: str) -> bool:
        """Delete the team's response of that id; False when there was none."""


class MemoryResponseStore:
    """In the process (a ledger with no database of its own)."""

    def __init__(self, clock: Callable[[], datetime] = now_utc) -> None:
        self._clock = clock
        self._rows: dict[str, StoredResponse] = {}

    async def put(self, stored: StoredResponse) -> None:
        now = self._clock()
        for key in [k for k, row in self._rows.items() if row.expires_at <= now]:
            del self._rows[key]
        self._rows[stored.id] = stored

    async def get(self, team: str, response_id: str) -> StoredResponse | None:
        row = self._rows.get(response_id)
        return row if row is not None and row.team == team and row.expires_at > self._clock() else None

    async def delete(self, team: str, response_id: str) -> bool:
        if await self.get(team, response_id) is None:
            return False
        del self._rows[response_id]
        return True


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class SQLiteResponseStore(PurgeSchedule):
    """In the SQLite ledger's file, on its worker thread (``run`` is the worker's: ``fn(conn, *args)`` there)."""

    def __init__(self, run: Callable[..., Awaitable[Any]], clock: Callable[[], datetime] = now_utc) -> None:
        super().__init__(clock)
        self._run = run

    async def put(self, stored: StoredResponse) -> None:
        now = self._clock()
        values = (stored.id, stored.team, to_micros(stored.created_at), to_micros(stored.expires_at),
                  _dumps(stored.response), _dumps(stored.input_items))
        await self._run(_sqlite_put, values, to_micros(now) if self._purge_due(now) else None)

    async def get(self, team: str, response_id: str) -> StoredResponse | None:
        row = await self._run(lambda conn: conn.execute(
            f"SELECT {_COLUMNS} FROM stored_responses WHERE id = ? AND team = ? AND expires_at > ?",
            (response_id, team, to_micros(self._clock()))).fetchone())
        return None if row is None else _stored(row, from_micros)

    async def delete(self, team: str, response_id: str) -> bool:
        deleted = await self._run(lambda conn: conn.execute(
            "DELETE FROM stored_responses WHERE id = ? AND team = ? AND expires_at > ?",
            (response_id, team, to_micros(self._clock()))).rowcount)
        return bool(deleted)


def _sqlite_put(conn: sqlite3.Connection, values: tuple[Any, ...], purge_before: int | None) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        if purge_before is not None:
            conn.execute("DELETE FROM stored_responses WHERE expires_at <= ?", (purge_before,))
        conn.execute(f"INSERT INTO stored_responses ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", values)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class PostgresResponseStore(PurgeSchedule):
    """In the PostgreSQL ledger's database, on its pool (``connection()`` is the ledger's: a pooled connection whose
    failures are ``LedgerUnavailable``)."""

    def __init__(self, connection: Callable[[], AbstractAsyncContextManager[Any]],
                 clock: Callable[[], datetime] = now_utc) -> None:
        super().__init__(clock)
        self._connection = connection

    async def put(self, stored: StoredResponse) -> None:
        now = self._clock()
        async with self._connection() as conn, conn.transaction():
            if self._purge_due(now):
                await conn.execute("DELETE FROM stored_responses WHERE expires_at <= $1", now)
            await conn.execute(f"INSERT INTO stored_responses ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)",
                               stored.id, stored.team, stored.created_at, stored.expires_at,
                               _dumps(stored.response), _dumps(stored.input_items))

    async def get(self, team: str, response_id: str) -> StoredResponse | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM stored_responses WHERE id = $1 AND team = $2 AND expires_at > $3",
                response_id, team, self._clock())
        return None if row is None else _stored(tuple(row), lambda moment: moment)

    async def delete(self, team: str, response_id: str) -> bool:
        async with self._connection() as conn:
            status = await conn.execute(
                "DELETE FROM stored_responses WHERE id = $1 AND team = $2 AND expires_at > $3",
                response_id, team, self._clock())
        return bool(status.endswith(" 1"))


def _stored(row: tuple[Any, ...], moment: Callable[[Any], datetime]) -> StoredResponse:
    return StoredResponse(id=row[0], team=row[1], created_at=moment(row[2]), expires_at=moment(row[3]),
                          response=json.loads(row[4]), input_items=json.loads(row[5]))


def open_response_store(ledger: object) -> ResponseStore:
    """The store in ``ledger``'s database (its own connection), or in memory for a ledger without one."""
    run, connection = ledger_database(ledger)
    if run is not None:
        return SQLiteResponseStore(run)
    if connection is not None:
        return PostgresResponseStore(connection)
    return MemoryResponseStore()
