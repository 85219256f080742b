"""The SQL both backends run, written once with numbered ``$n`` placeholders, and reading its rows back.

PostgreSQL runs these statements as they are; SQLite runs them through
:func:`~hermes_proxy.ledger.measure.sqlite_placeholders` (``$n`` -> ``?n``). A :class:`Codec` says how a backend stores
money and time: SQLite as integer nano-dollars and microseconds since the epoch, PostgreSQL as ``NUMERIC`` and
``TIMESTAMPTZ`` (values pass as they are).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hermes_proxy import keys as keyutil
from hermes_proxy.errors import InvalidRequest
from hermes_proxy.ledger.records import CACHED, Hold, KeyRecord, Progress, RequestRecord

#: how often a ledger deletes every team's expired holds (billing those with info; an admission bills its own team's)
PURGE_EVERY = timedelta(minutes=5)
KEY_COLUMNS = "id, team, name, prefix, limit_usd, created_at, revoked_at"
REQUEST_COLUMNS = (
    "request_id, started_at, team, key_id, key_name, model, route, reasoning, prompt_tokens, completion_tokens, "
    "reasoning_tokens, cost_usd, estimated, status, latency_ms, ttft_ms, learned_price"
)
#: a hold's columns as :func:`hold_values` gives them: the reservation, then what it is for and its last progress
HOLD_COLUMNS = (
    "id, team, key_id, amount_usd, created_at, expires_at, request_id, key_name, model, route, reasoning, started_at, "
    "prompt_tokens, completion_tokens, reasoning_tokens, cost_usd, learned_price"
)
INSERT_HOLD = f"INSERT INTO holds ({HOLD_COLUMNS}) VALUES ({', '.join(f'${i}' for i in range(1, 18))})"
#: a running request's usage so far, and its hold's new expiry
CHECKPOINT = (
    "UPDATE holds SET prompt_tokens = $1, completion_tokens = $2, reasoning_tokens = $3, cost_usd = $4, "
    "expires_at = $5 WHERE id = $6"
)
#: keep the highest factor seen per price key; returns the stored one
LEARN_PRICE = (
    "INSERT INTO learned_prices (price_key, factor, observed_at) VALUES ($1, $2, $3) ON CONFLICT (price_key) DO UPDATE "
    "SET factor = CASE WHEN excluded.factor > learned_prices.factor THEN excluded.factor ELSE learned_prices.factor END, "
    "observed_at = CASE WHEN excluded.factor > learned_prices.factor THEN excluded.observed_at "
    "ELSE learned_prices.observed_at END RETURNING factor"
)
PRICE_FACTORS = "SELECT price_key, factor FROM learned_prices ORDER BY price_key"
INSERT_KEY = (
    "INSERT INTO keys (id, team, name, prefix, key_hash, limit_usd, spent_usd, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, 0, $7)"
)
KEY_BY_HASH = f"SELECT {KEY_COLUMNS}, key_hash FROM keys WHERE key_hash = $1"
KEY_NAMES = "SELECT id, name FROM keys"
REVOKE_KEY = "UPDATE keys SET revoked_at = $1 WHERE id = $2"
DELETE_HOLD = "DELETE FROM holds WHERE id = $1"
#: the internal-consistency audit: request sums, the three roll-ups, and the holds (read in one snapshot)
AUDIT = (
    "SELECT team, COALESCE(SUM(cost_usd), 0), COUNT(*) FROM requests GROUP BY team",
    "SELECT team, spent_usd, requests FROM team_totals",
    "SELECT team, SUM(cost_usd), SUM(requests) FROM spend_buckets GROUP BY team",
    "SELECT k.id, k.spent_usd, COALESCE((SELECT SUM(cost_usd) FROM requests r WHERE r.key_id = k.id), 0) FROM keys k",
    "SELECT COUNT(*), COALESCE(SUM(amount_usd), 0) FROM holds",
)


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Codec:
    """How a backend stores money and time: ``*_in`` to a statement's parameter, ``*_out`` from a column."""

    money_in: Callable[[Decimal], Any] = _same
    money_out: Callable[[Any], Decimal] = _same
    time_in: Callable[[datetime], Any] = _same
    time_out: Callable[[Any], datetime] = _same
    flag_in: Callable[[bool], Any] = _same


# --- statements ------------------------------------------------------------------------------------------------------


def hold_values(hold: Hold, now: datetime, codec: Codec) -> tuple[Any, ...]:
    """The parameters of :data:`INSERT_HOLD` (the columns of :data:`HOLD_COLUMNS`)."""
    info, progress = hold.info, hold.progress
    described: tuple[Any, ...] = (None,) * 6
    if info is not None:
        described = (info.request_id, info.key_name, info.model, info.route, codec.flag_in(info.reasoning),
                     codec.time_in(info.started_at))
    return (hold.id, hold.team, hold.key_id, codec.money_in(hold.amount_usd), codec.time_in(now),
            codec.time_in(hold.expires_at), *described, *progress_values(progress, codec),
            codec.flag_in(hold.learned_price))


def progress_values(progress: Progress | None, codec: Codec) -> tuple[Any, ...]:
    """Tokens and cost of a hold's progress, as stored (no progress: nothing known, the cost is unknown)."""
    if progress is None:
        return (None, None, None, None)
    cost = None if progress.cost_usd is None else codec.money_in(progress.cost_usd)
    return (progress.prompt_tokens, progress.completion_tokens, progress.reasoning_tokens, cost)


def key_values(k: KeyRecord, key_hash: str, codec: Codec) -> tuple[Any, ...]:
    """The parameters of :data:`INSERT_KEY`."""
    return (k.id, k.team, k.name, k.prefix, key_hash, None if k.limit_usd is None else codec.money_in(k.limit_usd),
            codec.time_in(k.created_at))


def list_keys_query(team: str | None) -> tuple[str, list[Any]]:
    where, params = ("WHERE team = $1 ", [team]) if team is not None else ("", [])
    return f"SELECT {KEY_COLUMNS} FROM keys {where}ORDER BY created_at, id", params


def key_lookup(ident: str, team: str | None) -> tuple[str, list[Any]]:
    """The keys ``revoke_key`` may mean: one id, or the live keys of that name (in ``team`` when given)."""
    if ident.startswith(keyutil.KEY_ID_PREFIX):
        sql, params = f"SELECT {KEY_COLUMNS} FROM keys WHERE id = $1", [ident]
    else:
        sql, params = f"SELECT {KEY_COLUMNS} FROM keys WHERE name = $1 AND revoked_at IS NULL", [ident]
    if team is not None:
        sql += " AND team = $2"
        params.append(team)
    return sql, params


def requests_query(team: str | None, limit: int) -> tuple[str, list[Any]]:
    where, params = ("WHERE team = $1 ", [team]) if team is not None else ("", [])
    return (f"SELECT {REQUEST_COLUMNS} FROM requests {where}"
            f"ORDER BY started_at DESC, request_id DESC LIMIT ${len(params) + 1}", [*params, int(limit)])


def spend_query(
    by: str | None, team: str | None, since: datetime | None, until: datetime | None, tz: str, *,
    codec: Codec, local_day: str,
) -> tuple[str, list[Any]]:
    """Spend grouped ``by`` one of SPEND_GROUPS; ``local_day`` is the backend's expression for the day of
    ``started_at`` in the zone named by the placeholder ``{tz}``."""
    params: list[Any] = []

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    group = {
        None: "team", "team": "team", "model": "model", "route": "route", "status": "status",
        "key": "COALESCE(key_id, '')", "reasoning": "CASE WHEN reasoning THEN 'on' ELSE 'off' END",
    }.get(by) or local_day.format(tz=param(tz))
    where = []
    if team is not None:
        where.append(f"team = {param(team)}")
    if since is not None:
        where.append(f"started_at >= {param(codec.time_in(since))}")
    if until is not None:
        where.append(f"started_at < {param(codec.time_in(until))}")
    sql = (
        f"SELECT {group} AS grp, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(reasoning_tokens), "
        "COALESCE(SUM(cost_usd), 0), SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN estimated THEN 1 ELSE 0 END), COALESCE(SUM(CASE WHEN estimated THEN cost_usd END), 0), "
        "SUM(CASE WHEN learned_price THEN 1 ELSE 0 END), COALESCE(SUM(CASE WHEN learned_price THEN cost_usd END), 0), "
        f"SUM(CASE WHEN status = '{CACHED}' THEN 1 ELSE 0 END), COALESCE(SUM(s.saved_usd), 0), "
        "MAX(key_name) "
        "FROM requests LEFT JOIN cache_savings s ON s.request_id = requests.request_id "
        f"{'WHERE ' + ' AND '.join(where) if where else ''} GROUP BY grp"
    )
    return sql, params


# --- rows ------------------------------------------------------------------------------------------------------------


def key_from_row(row: Sequence[Any], codec: Codec) -> KeyRecord:
    """A key from the columns of :data:`KEY_COLUMNS`."""
    return KeyRecord(
        id=row[0], team=row[1], name=row[2], prefix=row[3],
        limit_usd=None if row[4] is None else codec.money_out(row[4]),
        created_at=codec.time_out(row[5]), revoked_at=None if row[6] is None else codec.time_out(row[6]),
    )


def request_values(r: RequestRecord, cost: Decimal | None, reserved: Decimal, now: datetime,
                   codec: Codec) -> tuple[Any, ...]:
    """The columns of :data:`REQUEST_COLUMNS`, then ``reserved_usd`` and ``recorded_at``, as stored."""
    return (r.request_id, codec.time_in(r.started_at), r.team, r.key_id, r.key_name, r.model, r.route,
            codec.flag_in(r.reasoning), r.prompt_tokens, r.completion_tokens, r.reasoning_tokens,
            None if cost is None else codec.money_in(cost), codec.flag_in(r.estimated), r.status, float(r.latency_ms),
            None if r.ttft_ms is None else float(r.ttft_ms), codec.flag_in(r.learned_price),
            codec.money_in(reserved), codec.time_in(now))


def request_from_row(row: Sequence[Any], codec: Codec) -> RequestRecord:
    """A settled request from the columns of :data:`REQUEST_COLUMNS`."""
    return RequestRecord(
        request_id=row[0], started_at=codec.time_out(row[1]), team=row[2], key_id=row[3], key_name=row[4],
        model=row[5], route=row[6], reasoning=bool(row[7]), prompt_tokens=row[8], completion_tokens=row[9],
        reasoning_tokens=row[10], cost_usd=None if row[11] is None else codec.money_out(row[11]),
        estimated=bool(row[12]), status=row[13], latency_ms=row[14], ttft_ms=row[15], learned_price=bool(row[16]),
    )


def key_to_revoke(rows: Sequence[Sequence[Any]], ident: str, codec: Codec) -> KeyRecord | None:
    """The one key :func:`key_lookup` found (``None``: none); a name live in several teams is an error."""
    if not rows:
        return None
    if len(rows) > 1:
        teams = ", ".join(sorted(row[1] for row in rows))
        raise InvalidRequest(f"key name '{ident}' is used in several teams ({teams}): say which team")
    return key_from_row(rows[0], codec)


def revoked(record: KeyRecord, now: datetime) -> KeyRecord:
    return KeyRecord(record.id, record.team, record.name, record.prefix, record.limit_usd, record.created_at, now)


def key_name_taken(record: KeyRecord) -> InvalidRequest:
    return InvalidRequest(f"team '{record.team}' already has a live key named '{record.name}'", param="name")


def audit_report(results: Sequence[Sequence[Sequence[Any]]], codec: Codec) -> dict[str, Any]:
    """The rows of the :data:`AUDIT` statements (the last one's single row) as the audit dict."""
    requests, totals, buckets, keys, (holds,) = results
    money = codec.money_out
    return {
        "requests": {t: (money(c), n) for t, c, n in requests},
        "totals": {t: (money(c), n) for t, c, n in totals},
        "buckets": {t: (money(c), n) for t, c, n in buckets},
        "keys": {k: (money(a), money(b)) for k, a, b in keys},
        "holds": (holds[0], money(holds[1])),
    }
