"""Budget windows over the hourly roll-up: which whole buckets and which partial-hour edges measure a window.

Spend per window is read from ``spend_buckets`` (updated by ``settle`` with the request row) plus the raw rows for a
partial hour at a window edge (zones whose offset is not whole hours); ``total`` windows read the running total.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hermes_proxy.ledger.amounts import ceil_bucket, floor_bucket
from policies.types import BudgetRule, TeamPolicy
from policies.windows import window_bounds


@dataclass(frozen=True, slots=True)
class Span:
    """How to measure one budget window: whole hourly buckets in ``[bucket_from, bucket_to)`` plus raw request rows
    in each of ``edges`` (the partial hours at the ends; none when the window starts and ends on whole UTC hours).
    ``total`` windows read the team's running total instead."""

    rule: BudgetRule
    start: datetime | None
    end: datetime | None
    bucket_from: datetime | None
    bucket_to: datetime | None
    edges: tuple[tuple[datetime, datetime], ...]

    @property
    def is_total(self) -> bool:
        return self.start is None

    def covers(self, now: datetime) -> bool:
        return self.start is None or (self.start <= now and (self.end is None or now < self.end))


def span_for(rule: BudgetRule, now: datetime, tz: str) -> Span:
    start, end = window_bounds(rule.window, now, tz)
    if start is None or end is None:
        return Span(rule, None, None, None, None, ())
    lo, hi = ceil_bucket(start), floor_bucket(end)
    if lo >= hi:
        return Span(rule, start, end, None, None, ((start, end),))
    edges = tuple((a, b) for a, b in ((start, lo), (hi, end)) if a < b)
    return Span(rule, start, end, lo, hi, edges)


class SpanCache:
    """Spans per (rule, zone), reused until their window ends: no time-zone arithmetic on the hot path.

    Owned by one ledger instance and used from its event loop only.
    """

    def __init__(self) -> None:
        self._spans: dict[tuple[BudgetRule, str], Span] = {}

    def plan(self, policy: TeamPolicy, now: datetime) -> tuple[Span, ...]:
        spans = []
        for rule in policy.budgets:
            key = (rule, policy.timezone)
            span = self._spans.get(key)
            if span is None or not span.covers(now):
                span = span_for(rule, now, policy.timezone)
                if len(self._spans) > 1024:
                    self._spans.clear()
                self._spans[key] = span
            spans.append(span)
        return tuple(spans)
