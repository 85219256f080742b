"""Money moves on SQLite, inside a transaction the caller holds: request rows (inserted, or replacing an ``expired``
estimate), expired holds billed, and the roll-ups (team totals, hourly buckets, keys) they change.

Integer nano-dollars and microseconds since the epoch, as the SQLite ledger stores them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from hermes_proxy.ledger.amounts import BUCKET
from hermes_proxy.ledger.queries import HOLD_COLUMNS, REQUEST_COLUMNS
from hermes_proxy.ledger.records import EXPIRED

_HOUR_MICROS = int(BUCKET.total_seconds()) * 1_000_000
_INSERT_REQUEST = (
    f"INSERT INTO requests ({REQUEST_COLUMNS}, reserved_usd, recorded_at) "
    f"VALUES ({', '.join('?' * 19)}) ON CONFLICT (request_id) DO NOTHING"
)
_REPLACE = (
    "UPDATE requests SET "
    + ", ".join(f"{c.strip()} = ?" for c in [*REQUEST_COLUMNS.split(",")[1:], "reserved_usd", "recorded_at"])
    + " WHERE request_id = ?"
)


class Rollups:
    """Changes to the roll-ups, summed per team, hour bucket and key, written with one upsert each by :meth:`apply`."""

    def __init__(self) -> None:
        self.teams: dict[str, list[int]] = {}
        self.buckets: dict[tuple[str, int], list[int]] = {}
        self.keys: dict[str, int] = {}

    def add(self, team: str, started_at: int, key_id: str | None, nanos: int, count: int) -> None:
        """``nanos`` more spend (negative: less) and ``count`` more requests, for a request started at ``started_at``
        (microseconds)."""
        totals = self.teams.setdefault(team, [0, 0])
        totals[0] += nanos
        totals[1] += count
        bucket = self.buckets.setdefault((team, started_at - started_at % _HOUR_MICROS), [0, 0])
        bucket[0] += nanos
        bucket[1] += count
        if key_id is not None and nanos:
            self.keys[key_id] = self.keys.get(key_id, 0) + nanos

    def apply(self, conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO team_totals (team, spent_usd, requests) VALUES (?, ?, ?) ON CONFLICT (team) "
            "DO UPDATE SET spent_usd = spent_usd + excluded.spent_usd, requests = requests + excluded.requests",
            [(team, add, count) for team, (add, count) in sorted(self.teams.items())],
        )
        conn.executemany(
            "INSERT INTO spend_buckets (team, bucket_start, cost_usd, requests) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (team, bucket_start) DO UPDATE SET cost_usd = cost_usd + excluded.cost_usd, "
            "requests = requests + excluded.requests",
            [(team, start, add, count) for (team, start), (add, count) in sorted(self.buckets.items())],
        )
        conn.executemany("UPDATE keys SET spent_usd = spent_usd + ? WHERE id = ?",
                         [(add, key_id) for key_id, add in sorted(self.keys.items()) if add])
        self.teams, self.buckets, self.keys = {}, {}, {}


def insert_request(conn: sqlite3.Connection, values: Sequence[Any], rollups: Rollups) -> bool:
    """Insert a request row (the 19 values of ``_INSERT_REQUEST``) once per request_id; True when inserted."""
    if conn.execute(_INSERT_REQUEST, tuple(values)).rowcount != 1:
        return False
    rollups.add(values[2], values[1], values[3], values[11] or 0, 1)
    return True


def replace_estimate(conn: sqlite3.Connection, values: Sequence[Any], rollups: Rollups) -> bool:
    """The real record (the 19 values) replaces its request's ``expired`` estimate, the roll-ups moving by the
    difference; False (nothing changed) when there is no such estimate (a retried settle)."""
    old = conn.execute("SELECT team, started_at, key_id, cost_usd FROM requests WHERE request_id = ? AND status = ?",
                       (values[0], EXPIRED)).fetchone()
    if old is None:
        return False
    conn.execute(_REPLACE, (*values[1:], values[0]))
    team, started_at, key_id, cost = old
    rollups.add(team, started_at, key_id, -(cost or 0), -1)
    rollups.add(values[2], values[1], values[3], values[11] or 0, 1)
    return True


def bill_expired(conn: sqlite3.Connection, team: str | None, now: int) -> int:
    """Delete the expired holds (of ``team``, or of every team) and bill each one that carries info as an ``expired``,
    estimated request from its last progress (a row already there for its request_id wins); returns how many."""
    where, params = ("team = ? AND ", (team, now)) if team is not None else ("", (now,))
    rows = conn.execute(f"DELETE FROM holds WHERE {where}expires_at <= ? RETURNING {HOLD_COLUMNS}", params).fetchall()
    rollups = Rollups()
    billed = 0
    for (_, hold_team, key_id, amount, _, expires_at, request_id, key_name, model, route, reasoning, started_at,
         prompt, completion, reasoning_tokens, cost, learned) in sorted(rows, key=lambda r: (r[1], r[6] or "")):
        if request_id is None:
            continue  # a hold without info: dropped, as it always was
        values = (request_id, started_at, hold_team, key_id, key_name, model, route, reasoning or 0, prompt or 0,
                  completion or 0, reasoning_tokens or 0, cost, 1, EXPIRED, (expires_at - started_at) / 1000, None,
                  learned, amount, now)
        billed += insert_request(conn, values, rollups)
    rollups.apply(conn)
    return billed
