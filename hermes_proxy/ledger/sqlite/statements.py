"""What the SQLite ledger runs on its connection: each function takes the connection first; writes are one
``BEGIN IMMEDIATE`` transaction each (so one that SQLite refused as busy wrote nothing and can run again).

Money is stored as integer nano-dollars, time as integer microseconds since the epoch (UTC) (:data:`CODEC`); the
statements shared with PostgreSQL come from :mod:`hermes_proxy.ledger.queries`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from hermes_proxy.errors import HermesError
from hermes_proxy.ledger.admission import KeyState, admit, usages_for
from hermes_proxy.ledger.amounts import from_micros, from_nanos, scaled_hold, to_micros, to_nanos
from hermes_proxy.ledger.measure import measure_query, read_measure, sqlite_placeholders
from hermes_proxy.ledger.queries import (
    AUDIT,
    CHECKPOINT,
    INSERT_HOLD,
    INSERT_KEY,
    KEY_NAMES,
    LEARN_PRICE,
    PRICE_FACTORS,
    REVOKE_KEY,
    Codec,
    audit_report,
    hold_values,
    key_lookup,
    key_name_taken,
    key_to_revoke,
    key_values,
    progress_values,
    request_values,
    revoked,
    spend_query,
)
from hermes_proxy.ledger.records import Admission, Hold, KeyRecord, Progress, RequestRecord
from hermes_proxy.ledger.reports import spend_rows
from hermes_proxy.ledger.spans import Span
from hermes_proxy.ledger.sqlite.billing import Rollups, bill_expired, insert_request, replace_estimate
from hermes_proxy.ledger.sqlite.worker import read, write
from policies.types import TeamPolicy

CODEC = Codec(money_in=to_nanos, money_out=from_nanos, time_in=to_micros, time_out=from_micros, flag_in=int)
ONE = Decimal(1)
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
    items: list[tuple[TeamPolicy, KeyRecord | None, Hold, datetime, tuple[Span, ...], tuple[str, ...]]],
    purge: bool,
) -> list[Admission | HermesError]:
    """Decide a batch of reservations in one transaction, in order, each seeing the holds of those before it and
    its team's expired holds billed; each hold is scaled by the learned factor of its price keys.

    Expired holds are billed once per team per batch (as of the batch's latest clock reading; the transaction runs
    after every item's), and each set of price keys is looked up once: a burst's batch is mostly one team and route.
    """
    results: list[Admission | HermesError] = []
    latest: dict[str, datetime] = {}
    for policy, _, _, now, _, _ in items:
        latest[policy.name] = max(now, latest.get(policy.name, now))
    factors: dict[tuple[str, ...], Decimal] = {}
    with write(conn):
        for team, now in latest.items():
            bill_expired(conn, team, to_micros(now))
        for policy, key, hold, now, spans, price_keys in items:
            factor = factors.get(price_keys)
            if factor is None:
                factor = factors[price_keys] = learned_factor(conn, price_keys)
            if factor > 1:
                hold = replace(hold, amount_usd=scaled_hold(hold.amount_usd, factor), learned_price=True)
            try:
                spent, reserved, key_state = measure(conn, policy.name, spans, key, now)
                decision = admit(policy, key_state, hold.amount_usd,
                                 usages_for(spans, spent, reserved, key_state, policy))
            except HermesError as refusal:  # over budget, or a key revoked meanwhile: this request only
                results.append(refusal)
                continue
            execute(conn, INSERT_HOLD, hold_values(hold, now, CODEC))
            results.append(Admission(hold, decision.budgets, decision.explanation, factor))
        if purge:
            bill_expired(conn, None, to_micros(max(item[3] for item in items)))
    return results


def many_expired_holds(conn: sqlite3.Connection, teams: dict[str, int], limit: int) -> bool:
    """Whether one of ``teams`` (name -> now, microseconds) has more than ``limit`` expired holds to bill."""
    for team, now in teams.items():
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM holds WHERE team = ? AND expires_at <= ? LIMIT ?)",
            (team, now, limit + 1)).fetchone()
        if count > limit:
            return True
    return False


def learned_factor(conn: sqlite3.Connection, price_keys: tuple[str, ...]) -> Decimal:
    """The highest learned factor of ``price_keys``, at least 1."""
    if not price_keys:
        return ONE
    row = conn.execute(f"SELECT MAX(factor) FROM learned_prices WHERE price_key IN ({', '.join('?' * len(price_keys))})",
                       price_keys).fetchone()
    return ONE if row[0] is None else max(ONE, from_nanos(row[0]))


def settle_batch(conn: sqlite3.Connection, items: list[tuple[Hold, RequestRecord, Decimal | None]],
                 now: datetime) -> None:
    """One transaction for a batch of settles; the roll-ups get one upsert per team, hour bucket and key. A record
    whose hold expired and was billed replaces that ``expired`` estimate; a retried settle changes nothing."""
    rollups = Rollups()
    with write(conn):
        for hold, r, cost in items:
            values = request_values(r, cost, hold.amount_usd, now, CODEC)
            if not insert_request(conn, values, rollups):
                replace_estimate(conn, values, rollups)
        rollups.apply(conn)
        conn.executemany("DELETE FROM holds WHERE id = ?", [(hold.id,) for hold, _, _ in items])


def checkpoint(conn: sqlite3.Connection, hold_id: str, progress: Progress, expires_at: datetime) -> bool:
    with write(conn):
        return execute(conn, CHECKPOINT, (*progress_values(progress, CODEC), to_micros(expires_at), hold_id)
                       ).rowcount == 1


def learn_price(conn: sqlite3.Connection, price_key: str, factor: Decimal, now: datetime) -> Decimal:
    with write(conn):
        (stored,) = execute(conn, LEARN_PRICE, (price_key, to_nanos(factor), to_micros(now))).fetchone()
    return from_nanos(stored)


def price_factors(conn: sqlite3.Connection) -> dict[str, Decimal]:
    return {key: from_nanos(factor) for key, factor in execute(conn, PRICE_FACTORS).fetchall()}


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
    return spend_rows(by, rows, names, from_nanos)


def audit(conn: sqlite3.Connection) -> dict[str, Any]:
    """Internal consistency: every roll-up equals the SUM over the request rows it summarizes."""
    with read(conn):
        results = [conn.execute(sql).fetchall() for sql in AUDIT]
    return audit_report(results, CODEC)
