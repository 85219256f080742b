"""What the SQLite ledger runs on its worker thread: each function takes the connection first; writes are one
``BEGIN IMMEDIATE`` transaction each.

Money is stored as integer nano-dollars, time as integer microseconds since the epoch (UTC) (:data:`CODEC`); the
statements shared with PostgreSQL come from :mod:`hermes_proxy.ledger.queries`.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from decimal import Decimal
from typing import Any

from hermes_proxy.errors import HermesError
from hermes_proxy.ledger.admission import KeyState, admit, usages_for
from hermes_proxy.ledger.amounts import floor_bucket, from_micros, from_nanos, to_micros, to_nanos
from hermes_proxy.ledger.measure import measure_query, read_measure, sqlite_placeholders
from hermes_proxy.ledger.queries import (
    AUDIT,
    INSERT_HOLD,
    INSERT_KEY,
    KEY_NAMES,
    REQUEST_COLUMNS,
    REVOKE_KEY,
    Codec,
    audit_report,
    hold_values,
    key_lookup,
    key_name_taken,
    key_to_revoke,
    key_values,
    revoked,
    spend_query,
)
from hermes_proxy.ledger.records import Admission, Hold, KeyRecord, RequestRecord
from hermes_proxy.ledger.reports import spend_rows
from hermes_proxy.ledger.spans import Span
from hermes_proxy.ledger.sqlite.worker import purge_expired_holds, read, write
from policies.types import TeamPolicy

CODEC = Codec(money_in=to_nanos, money_out=from_nanos, time_in=to_micros, time_out=from_micros)
#: the day of ``started_at`` in a zone (``hermes_local_day`` is registered on the connection by the worker)
LOCAL_DAY = "hermes_local_day(started_at, {tz})"


def execute(conn: sqlite3.Connection, sql: str, params: Any = ()) -> sqlite3.Cursor:
    """Run a statement written with ``$n`` placeholders."""
    return conn.execute(sqlite_placeholders(sql), params)


def measure(
    conn: sqlite3.Connection, team: str, spans: tuple[Span, ...], key: KeyRecord | None, now: datetime
) -> tuple[list[Decimal], Decimal, KeyState | None]:
    sql, params = measure_query(team, spans, key.id if key else None, now, when=to_micros)
    return read_measure(execute(conn, sql, params).fetchone(), spans, key, from_nanos)


def reserve_batch(
    conn: sqlite3.Connection,
    items: list[tuple[TeamPolicy, KeyRecord | None, Hold, datetime, tuple[Span, ...]]], purge: bool,
) -> list[Admission | HermesError]:
    """Decide a batch of reservations in one transaction, in order, each seeing the holds of those before it."""
    results: list[Admission | HermesError] = []
    with write(conn):
        for policy, key, hold, now, spans in items:
            try:
                spent, reserved, key_state = measure(conn, policy.name, spans, key, now)
                decision = admit(policy, key_state, hold.amount_usd,
                                 usages_for(spans, spent, reserved, key_state, policy))
            except HermesError as refusal:  # over budget, or a key revoked meanwhile: this request only
                results.append(refusal)
                continue
            execute(conn, INSERT_HOLD, hold_values(hold, now, CODEC))
            results.append(Admission(hold, decision.budgets, decision.explanation))
    if purge:
        purge_expired_holds(conn, to_micros(max(item[3] for item in items)))
    return results


def settle_batch(conn: sqlite3.Connection, items: list[tuple[Hold, RequestRecord, Decimal | None]],
                 now: datetime) -> None:
    """One transaction for a batch of settles; the roll-ups get one upsert per team, hour bucket and key."""
    teams: dict[str, list[int]] = {}
    buckets: dict[tuple[str, int], list[int]] = {}
    keys: dict[str, int] = {}
    recorded_at = to_micros(now)
    with write(conn):
        for hold, r, cost in items:
            nanos = None if cost is None else to_nanos(cost)
            inserted = conn.execute(
                f"INSERT INTO requests ({REQUEST_COLUMNS}, reserved_usd, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING",
                (r.request_id, to_micros(r.started_at), r.team, r.key_id, r.key_name, r.model, r.route,
                 int(r.reasoning), r.prompt_tokens, r.completion_tokens, r.reasoning_tokens, nanos,
                 int(r.estimated), r.status, float(r.latency_ms), None if r.ttft_ms is None else float(r.ttft_ms),
                 to_nanos(hold.amount_usd), recorded_at),
            ).rowcount
            if inserted != 1:
                continue  # settled before (a retry): counted once
            add = nanos or 0
            team = teams.setdefault(r.team, [0, 0])
            team[0] += add
            team[1] += 1
            bucket = buckets.setdefault((r.team, to_micros(floor_bucket(r.started_at))), [0, 0])
            bucket[0] += add
            bucket[1] += 1
            if r.key_id is not None and add:
                keys[r.key_id] = keys.get(r.key_id, 0) + add
        conn.executemany(
            "INSERT INTO team_totals (team, spent_usd, requests) VALUES (?, ?, ?) ON CONFLICT (team) "
            "DO UPDATE SET spent_usd = spent_usd + excluded.spent_usd, requests = requests + excluded.requests",
            [(team, add, count) for team, (add, count) in teams.items()],
        )
        conn.executemany(
            "INSERT INTO spend_buckets (team, bucket_start, cost_usd, requests) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (team, bucket_start) DO UPDATE SET cost_usd = cost_usd + excluded.cost_usd, "
            "requests = requests + excluded.requests",
            [(team, start, add, count) for (team, start), (add, count) in buckets.items()],
        )
        conn.executemany("UPDATE keys SET spent_usd = spent_usd + ? WHERE id = ?",
                         [(add, key_id) for key_id, add in keys.items()])
        conn.executemany("DELETE FROM holds WHERE id = ?", [(hold.id,) for hold, _, _ in items])


def insert_key(conn: sqlite3.Connection, k: KeyRecord, key_hash: str) -> None:
    try:
        with write(conn):
            execute(conn, INSERT_KEY, key_values(k, key_hash, CODEC))
    except sqlite3.IntegrityError:
        raise key_name_taken(k) from None


def revoke_key(conn: sqlite3.Connection, ident: str, team: str | None, now: datetime) -> KeyRecord | None:
    with write(conn):
        sql, params = key_lookup(ident, team)
        record = key_to_revoke(execute(conn, sql, params).fetchall(), ident, CODEC)
        if record is None or record.revoked_at is not None:
            return record
        execute(conn, REVOKE_KEY, (to_micros(now), record.id))
        return revoked(record, now)


def spend(
    conn: sqlite3.Connection, team: str | None, by: str | None, since: datetime | None,
    until: datetime | None, tz: str,
) -> list[dict[str, Any]]:
    sql, params = spend_query(by, team, since, until, tz, codec=CODEC, local_day=LOCAL_DAY)
    rows = execute(conn, sql, params).fetchall()
    names = dict(conn.execute(KEY_NAMES).fetchall()) if by == "key" else None
    return spend_rows(by, [(*row[:5], from_nanos(row[5]), *row[6:]) for row in rows], names)


def audit(conn: sqlite3.Connection) -> dict[str, Any]:
    """Internal consistency: every roll-up equals the SUM over the request rows it summarizes."""
    with read(conn):
        results = [conn.execute(sql).fetchall() for sql in AUDIT]
    return audit_report(results, CODEC)
