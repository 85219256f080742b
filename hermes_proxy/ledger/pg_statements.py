"""The PostgreSQL ledger's data-modifying statements: settle (one and a batch), replacing an expired estimate, billing
expired holds, and a batch of admissions, each ONE statement (data-modifying CTEs) so that each is one round trip and atomic.

Roll-ups are always changed by grouped upserts (one row per team, hour bucket and key, in a fixed order), so a
statement never touches a row twice and concurrent statements take their row locks in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from hermes_proxy.ledger.measure import measure_query
from hermes_proxy.ledger.queries import HOLD_COLUMNS, REQUEST_COLUMNS
from hermes_proxy.ledger.records import EXPIRED
from hermes_proxy.ledger.spans import Span

#: the UTC hour of ``started_at`` (independent of the session's TimeZone), as ``floor_bucket`` computes it
_HOUR = "date_trunc('hour', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"


def rollups(source: str, prefix: str) -> str:
    """CTEs adding ``source`` (columns team, key_id, started_at, cost, n) to the team totals, hourly buckets and keys."""
    return f"""{prefix}_total AS (
    INSERT INTO team_totals (team, spent_usd, requests)
    SELECT team, SUM(cost), SUM(n) FROM {source} GROUP BY team ORDER BY team
    ON CONFLICT (team) DO UPDATE SET spent_usd = team_totals.spent_usd + EXCLUDED.spent_usd,
        requests = team_totals.requests + EXCLUDED.requests
), {prefix}_bucket AS (
    INSERT INTO spend_buckets (team, bucket_start, cost_usd, requests)
    SELECT team, {_HOUR}, SUM(cost), SUM(n) FROM {source} GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (team, bucket_start) DO UPDATE SET cost_usd = spend_buckets.cost_usd + EXCLUDED.cost_usd,
        requests = spend_buckets.requests + EXCLUDED.requests
), {prefix}_keys AS (
    UPDATE keys SET spent_usd = keys.spent_usd + s.cost
    FROM (SELECT key_id, SUM(cost) AS cost FROM {source} WHERE key_id IS NOT NULL GROUP BY key_id ORDER BY key_id) s
    WHERE keys.id = s.key_id AND s.cost <> 0
)"""


def bill_expired(now: str, team: str | None, *, which: str | None = None) -> str:
    """CTEs deleting the expired holds (of ``team``, a placeholder, or of every team; or the ids ``which`` selects,
    a query locking them in id order) and billing each one that carries info as an ``expired``, estimated request
    from its last progress, once per ``request_id`` (a row already there, the real settle, wins). ``billed`` (team,
    key_id, started_at, cost, n, request_id) lists the rows inserted."""
    where = f"team = {team} AND " if team is not None else ""
    # lock the holds in id order, as every biller does, so that two billers cannot deadlock on them
    which = which or f"SELECT id FROM holds WHERE {where}expires_at <= {now} ORDER BY id FOR UPDATE"
    return f"""expired AS (
    DELETE FROM holds WHERE id IN (
        {which}
    ) RETURNING {HOLD_COLUMNS}
), billed AS (
    INSERT INTO requests ({REQUEST_COLUMNS}, reserved_usd, recorded_at)
    SELECT request_id, started_at, team, key_id, key_name, model, route, COALESCE(reasoning, FALSE),
        COALESCE(prompt_tokens, 0), COALESCE(completion_tokens, 0), COALESCE(reasoning_tokens, 0), cost_usd, TRUE,
        '{EXPIRED}', EXTRACT(EPOCH FROM (expires_at - started_at)) * 1000, NULL, learned_price, amount_usd, {now}
    FROM expired WHERE request_id IS NOT NULL ORDER BY team, request_id
    ON CONFLICT (request_id) DO NOTHING
    RETURNING team, key_id, started_at, COALESCE(cost_usd, 0) AS cost, 1 AS n, request_id
), {rollups("billed", "billed")}"""


#: every team's expired holds (at $1): delete them, bill those with info; returns how many were billed
BILL_EXPIRED = f"WITH {bill_expired('$1', None)} SELECT count(*) FROM billed"

#: the types of REQUEST_COLUMNS, reserved_usd and recorded_at (the statement selects its parameters, so says them)
_REQUEST_TYPES = ("text", "timestamptz", "text", "text", "text", "text", "text", "boolean", "bigint", "bigint",
                  "bigint", "numeric", "boolean", "text", "float8", "float8", "boolean", "numeric", "timestamptz")
#: drop the hold, then insert the request row once per request_id and add it to the roll-ups ($20 the hour, $21 the
#: hold). The hold is locked first, as the expiry billing does, so that a settle and a billing cannot deadlock.
SETTLE = f"""
WITH dropped AS (
    DELETE FROM holds WHERE id = $21 RETURNING id
), ins AS (
    INSERT INTO requests ({REQUEST_COLUMNS}, reserved_usd, recorded_at)
    SELECT {", ".join(f"${i}::{t}" for i, t in enumerate(_REQUEST_TYPES, start=1))}
    WHERE (SELECT count(*) FROM dropped) >= 0
    ON CONFLICT (request_id) DO NOTHING
    RETURNING team, key_id, COALESCE(cost_usd, 0) AS cost
), total AS (
    INSERT INTO team_totals (team, spent_usd, requests) SELECT team, cost, 1 FROM ins
    ON CONFLICT (team) DO UPDATE
    SET spent_usd = team_totals.spent_usd + EXCLUDED.spent_usd, requests = team_totals.requests + 1
), bucket AS (
    INSERT INTO spend_buckets (team, bucket_start, cost_usd, requests) SELECT team, $20, cost, 1 FROM ins
    ON CONFLICT (team, bucket_start) DO UPDATE
    SET cost_usd = spend_buckets.cost_usd + EXCLUDED.cost_usd, requests = spend_buckets.requests + 1
), key_spend AS (
    UPDATE keys SET spent_usd = keys.spent_usd + ins.cost FROM ins WHERE keys.id = ins.key_id AND ins.cost > 0
)
SELECT count(*) FROM ins
"""

_ASSIGN = ", ".join(f"{column.strip()} = ${i}" for i, column in
                    enumerate([*REQUEST_COLUMNS.split(",")[1:], "reserved_usd", "recorded_at"], start=2))
#: the real record replaces the ``expired`` estimate of its request (same parameters as SETTLE's first 19): the row
#: is updated and the roll-ups move by the difference; a row no longer ``expired`` (replaced already) is left alone
REPLACE_ESTIMATE = f"""
WITH old AS (
    SELECT request_id, team, key_id, started_at, COALESCE(cost_usd, 0) AS cost FROM requests
    WHERE request_id = $1 AND status = '{EXPIRED}' FOR UPDATE
), upd AS (
    UPDATE requests r SET {_ASSIGN} FROM old WHERE r.request_id = old.request_id
    RETURNING r.team, r.key_id, r.started_at, COALESCE(r.cost_usd, 0) AS cost
), delta AS (
    SELECT team, key_id, started_at, cost, 1 AS n FROM upd
    UNION ALL SELECT team, key_id, started_at, -cost, -1 FROM old
), {rollups("delta", "moved")}
SELECT count(*) FROM upd
"""


# --- batches (hermes_proxy.ledger.pg_groups): one statement for many admissions or settles ---------------------------

#: the types of HOLD_COLUMNS, for the holds of a batch passed as one array per column
_HOLD_TYPES = ("text", "text", "text", "numeric", "timestamptz", "timestamptz", "text", "text", "text", "text",
               "boolean", "timestamptz", "bigint", "bigint", "bigint", "numeric", "boolean")
#: insert the holds of a batch (one array per column of HOLD_COLUMNS)
INSERT_HOLDS = (f"INSERT INTO holds ({HOLD_COLUMNS}) SELECT * FROM unnest("
                + ", ".join(f"${i}::{t}[]" for i, t in enumerate(_HOLD_TYPES, start=1)) + ")")
#: the columns of a deleted (expired) hold that admission_batch returns, one array each, in id order
DELETED_COLUMNS = ("e.team", "e.key_id", "e.amount_usd", "e.expires_at", "e.started_at", "b.cost")


def admission_batch(
    measures: Sequence[tuple[str, Sequence[Span], str | None, datetime]],
) -> tuple[str, list[Any]]:
    """ONE statement for a batch of admissions, run once the advisory locks of its teams are held: bill the holds of
    each team expired by its moment ($1 teams, $2 moments; $3 the time recorded on the billed rows), read the learned
    factors of the price keys ($4), and measure each (team, spans, key, moment) of ``measures`` (parameters from $5).

    Columns: the deleted holds, one array per :data:`DELETED_COLUMNS` (``b.cost`` NULL for a hold not billed); the
    learned price keys and their factors (two arrays); then each measure's columns (:func:`measure_query`) in order.
    The measures' snapshot is taken before the billing: the caller adds what was billed and what was deleted back.
    """
    which = ("SELECT h.id FROM holds h JOIN unnest($1::text[], $2::timestamptz[]) AS t(team, upto) "
             "ON h.team = t.team WHERE h.expires_at <= t.upto ORDER BY h.id FOR UPDATE OF h")
    params: list[Any] = []
    columns: list[str] = []
    for team, spans, key_id, upto in measures:
        sql, more = measure_query(team, spans, key_id, upto, when=_same, first=5 + len(params))
        columns.append(sql.removeprefix("SELECT "))
        params += more
    deleted = "FROM expired e LEFT JOIN billed b ON b.request_id = e.request_id"
    arrays = [f"(SELECT array_agg({c} ORDER BY e.id) {deleted})" for c in DELETED_COLUMNS]
    factors = [f"(SELECT array_agg({c} ORDER BY price_key) FROM learned_prices WHERE price_key = ANY($4::text[]))"
               for c in ("price_key", "factor")]
    sql = (f"WITH {bill_expired('$3', None, which=which)} SELECT "
           + ", ".join([*arrays, *factors, *columns, "set_config('synchronous_commit', 'off', true)"]))
    return sql, params


#: settle a batch (one array per column of SETTLE's first 19 parameters, then $20 the hold ids): drop the holds
#: (locked in id order), insert each request row once per request_id, add them to the roll-ups (one upsert per team,
#: hour and key, in order); returns the request ids inserted (the others are retries or replace an estimate)
SETTLE_BATCH = f"""
WITH input AS (
    SELECT * FROM unnest({", ".join(f"${i}::{t}[]" for i, t in enumerate(_REQUEST_TYPES, start=1))})
    AS t({REQUEST_COLUMNS}, reserved_usd, recorded_at)
), dropped AS (
    DELETE FROM holds WHERE id IN (SELECT id FROM holds WHERE id = ANY($20::text[]) ORDER BY id FOR UPDATE)
    RETURNING id
), ins AS (
    INSERT INTO requests ({REQUEST_COLUMNS}, reserved_usd, recorded_at)
    SELECT * FROM input WHERE (SELECT count(*) FROM dropped) >= 0 ORDER BY request_id
    ON CONFLICT (request_id) DO NOTHING
    RETURNING team, key_id, started_at, COALESCE(cost_usd, 0) AS cost, 1 AS n, request_id
), {rollups("ins", "settled")}
SELECT array_agg(request_id) FROM ins
"""


def _same(moment: datetime) -> datetime:
    return moment
