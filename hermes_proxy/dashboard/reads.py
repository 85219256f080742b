"""What the dashboard reads from the ledger beyond the :class:`~hermes_proxy.ledger.protocol.Ledger` protocol: the
hourly roll-up (``spend_buckets``), the most expensive requests of a span, and the live holds.

Every statement is bounded by an index: ``spend_buckets`` by its key (team, hour), ``requests`` by (team, started_at),
``holds`` by (team, expires_at); a year of hourly buckets is 8,760 rows per team whatever the traffic. The statements are
written once with ``$n`` placeholders and run on the backend's own connection (SQLite worker thread, PostgreSQL pool).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from hermes_proxy.ledger.base import Ledger, RequestRecord
from hermes_proxy.ledger.measure import sqlite_placeholders
from hermes_proxy.ledger.queries import REQUEST_COLUMNS, Codec, request_from_row
from policies.windows import zone


class ReadsUnavailable(RuntimeError):
    """The ledger is neither the SQLite nor the PostgreSQL backend (a test double): no roll-up to read."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """Settled spend of one team in one hour (``start`` UTC) or one local day."""

    start: datetime | date
    cost_usd: Decimal
    requests: int


@dataclass(frozen=True, slots=True)
class Live:
    """Requests running now (their holds, in every process on this ledger) and what they hold."""

    in_flight: int
    reserved_usd: Decimal


async def fetch(ledger: Ledger, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
    worker = getattr(ledger, "_worker", None)
    if worker is not None:  # SQLite: on its worker thread, like every other statement
        text = sqlite_placeholders(sql)
        rows: list[Sequence[Any]] = await worker.run(lambda conn: conn.execute(text, list(params)).fetchall())
        return rows
    connect = getattr(ledger, "_conn", None)
    if connect is not None:  # PostgreSQL: a pooled connection
        async with connect() as conn:
            return list(await conn.fetch(sql, *params))
    raise ReadsUnavailable(f"the dashboard cannot read roll-ups from {type(ledger).__name__}")


def _codec(ledger: Ledger) -> Codec:
    codec = getattr(ledger, "codec", None)
    if not isinstance(codec, Codec):
        raise ReadsUnavailable(f"{type(ledger).__name__} has no storage codec")
    return codec


async def hourly(ledger: Ledger, team: str, since: datetime, until: datetime) -> list[Bucket]:
    """The team's hourly buckets in [since, until), oldest first (hours without spend are absent)."""
    codec = _codec(ledger)
    rows = await fetch(ledger, "SELECT bucket_start, cost_usd, requests FROM spend_buckets "
                               "WHERE team = $1 AND bucket_start >= $2 AND bucket_start < $3 ORDER BY bucket_start",
                       [team, codec.time_in(since), codec.time_in(until)])
    return [Bucket(codec.time_out(start), codec.money_out(cost), int(count)) for start, cost, count in rows]


def daily(buckets: Sequence[Bucket], tz: str) -> list[Bucket]:
    """Hourly buckets summed per local day in ``tz`` (an hour is counted on the day it starts in)."""
    where = zone(tz)
    days: dict[date, tuple[Decimal, int]] = {}
    for b in buckets:
        assert isinstance(b.start, datetime)
        day = b.start.astimezone(where).date()
        cost, count = days.get(day, (Decimal(0), 0))
        days[day] = (cost + b.cost_usd, count + b.requests)
    return [Bucket(day, cost, count) for day, (cost, count) in sorted(days.items())]


async def team_totals(ledger: Ledger, teams: Sequence[str], since: datetime) -> dict[str, tuple[Decimal, int]]:
    """Settled spend and requests per team since ``since`` (hour buckets starting at or after it)."""
    if not teams:
        return {}
    codec = _codec(ledger)
    marks = ", ".join(f"${i}" for i in range(1, len(teams) + 1))
    rows = await fetch(ledger, f"SELECT team, SUM(cost_usd), SUM(requests) FROM spend_buckets "
                               f"WHERE team IN ({marks}) AND bucket_start >= ${len(teams) + 1} GROUP BY team",
                       [*teams, codec.time_in(since)])
    return {team: (codec.money_out(cost), int(count)) for team, cost, count in rows}


async def most_expensive(ledger: Ledger, team: str, since: datetime, until: datetime,
                         limit: int = 20) -> list[RequestRecord]:
    """The team's costliest requests started in [since, until) (known cost only), dearest first."""
    codec = _codec(ledger)
    rows = await fetch(ledger, f"SELECT {REQUEST_COLUMNS} FROM requests WHERE team = $1 AND started_at >= $2 "
                               "AND started_at < $3 AND cost_usd IS NOT NULL "
                               "ORDER BY cost_usd DESC, started_at DESC LIMIT $4",
                       [team, codec.time_in(since), codec.time_in(until), int(limit)])
    return [request_from_row(row, codec) for row in rows]


async def live(ledger: Ledger, now: datetime) -> dict[str, Live]:
    """Unexpired holds per team: one per running request (the pipeline stores one for every request)."""
    codec = _codec(ledger)
    rows = await fetch(ledger, "SELECT team, COUNT(*), COALESCE(SUM(amount_usd), 0) FROM holds "
                               "WHERE expires_at > $1 GROUP BY team", [codec.time_in(now)])
    return {team: Live(int(count), codec.money_out(amount)) for team, count, amount in rows}
