"""The numbers of a team's page, read once per request: budgets, live holds, hourly and daily spend from the roll-up,
spend by model, key and reasoning (the CLI's report), and the costliest requests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hermes_proxy.commands.spend import report_span
from hermes_proxy.config import Config
from hermes_proxy.dashboard import reads
from hermes_proxy.ledger.base import KeyRecord, Ledger, RequestRecord
from policies.budget import BudgetStatus
from policies.types import TeamPolicy
from policies.windows import zone

#: the periods a page can show (each also a ``--since`` of the CLI)
PERIODS: tuple[str, ...] = ("24h", "7d", "30d", "90d", "365d")
DEFAULT_PERIOD = "30d"
HOURLY_HOURS = 48
#: the breakdowns shown on a team's page (each a ``--by`` of the CLI)
BREAKDOWNS: tuple[str, ...] = ("model", "key", "reasoning")

Point = tuple[datetime | date, Decimal, int]


def period_of(text: str | None) -> str:
    return text if text in PERIODS else DEFAULT_PERIOD


@dataclass(frozen=True, slots=True)
class TeamReport:
    policy: TeamPolicy
    period: str
    tz: str
    since: datetime
    now: datetime
    budgets: tuple[BudgetStatus, ...]
    live: reads.Live
    hourly: list[Point]
    daily: list[Point]
    spend: dict[str, list[dict[str, Any]]]
    top: list[RequestRecord]

    @property
    def period_cost(self) -> Decimal:
        return sum((cost for _, cost, _ in self.daily), Decimal(0))

    @property
    def period_requests(self) -> int:
        return sum(count for _, _, count in self.daily)


def _hours(buckets: list[reads.Bucket], start: datetime, count: int) -> list[Point]:
    found = {b.start: b for b in buckets}
    points: list[Point] = []
    for i in range(count):
        moment = start + timedelta(hours=i)
        b = found.get(moment)
        points.append((moment, b.cost_usd, b.requests) if b else (moment, Decimal(0), 0))
    return points


def _days(buckets: list[reads.Bucket], first: date, last: date) -> list[Point]:
    found = {b.start: b for b in buckets}
    points: list[Point] = []
    day = first
    while day <= last:
        b = found.get(day)
        points.append((day, b.cost_usd, b.requests) if b else (day, Decimal(0), 0))
        day += timedelta(days=1)
    return points


async def team_report(config: Config, ledger: Ledger, policy: TeamPolicy, period: str,
                      key: KeyRecord | None = None, now: datetime | None = None) -> TeamReport:
    now = now or datetime.now(UTC)
    tz, since, _ = report_span(config, policy.name, None, period, None, now)
    assert since is not None
    where = zone(tz)
    hour_now = now.replace(minute=0, second=0, microsecond=0)
    hours_from = hour_now - timedelta(hours=HOURLY_HOURS - 1)
    first_day = since.astimezone(where).date()
    # the roll-up from the first local midnight on: a day's bar holds the whole day
    day_start = datetime.combine(first_day, datetime.min.time(), where).astimezone(UTC).replace(minute=0)
    budgets, live, history, top, *spent = await asyncio.gather(
        ledger.budget_status(policy, now=now, key=key),
        reads.live(ledger, now),
        reads.hourly(ledger, policy.name, min(day_start, hours_from), hour_now + timedelta(hours=1)),
        reads.most_expensive(ledger, policy.name, since, now),
        *(ledger.spend(team=policy.name, by=by, since=since, until=None, tz=tz) for by in BREAKDOWNS),
    )
    daily = reads.daily([b for b in history if isinstance(b.start, datetime) and b.start >= day_start], tz)
    return TeamReport(
        policy=policy, period=period, tz=tz, since=since, now=now, budgets=budgets,
        live=live.get(policy.name, reads.Live(0, Decimal(0))),
        hourly=_hours([b for b in history if isinstance(b.start, datetime) and b.start >= hours_from], hours_from,
                      HOURLY_HOURS),
        daily=_days(daily, first_day, now.astimezone(where).date()),
        spend=dict(zip(BREAKDOWNS, spent, strict=True)), top=top,
    )
