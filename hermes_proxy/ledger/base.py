"""The ledger: the protocol the gateway calls, its records, and the logic both backends share.

Money is :class:`~decimal.Decimal` everywhere and is kept to the nano-dollar (1e-9 USD): costs are rounded half-even to
it, reservations rounded *up* to it (a hold never under-reserves). Both backends store exactly these values (SQLite as
integer nano-dollars, PostgreSQL as ``NUMERIC(24, 9)``), so sums are exact and both return the same numbers.

Spend per budget window is read from an hourly roll-up (``spend_buckets``) that ``settle`` updates in the same
transaction as the request row, plus the raw rows for a partial hour at a window edge (zones whose offset is not whole
hours); the lifetime total of a team and of a key are running counters. A reservation therefore costs a handful of
index lookups whatever the history size, and the roll-ups depend on no policy (time zone or windows may change freely).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hermes_proxy import keys as keyutil
from hermes_proxy.errors import AuthenticationError, BudgetExceeded
from hermes_proxy.money import format_usd, usd_text
from policies.budget import (
    KEY_WINDOW,
    BudgetStatus,
    Decision,
    Usage,
    decide,
    effective_key_limit,
    format_reset,
    soft_warning,
    tidy,
    tightest_remaining,
)
from policies.types import BudgetRule, TeamPolicy
from policies.windows import require_aware, window_bounds

__all__ = [
    "STATUSES",
    "Admission",
    "BudgetStatus",
    "Hold",
    "KeyRecord",
    "Ledger",
    "RequestRecord",
]

NANO = Decimal("1e-9")
ZERO = Decimal(0)
BUCKET = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: how a request can end, checked when it is settled; rows already stored are read back whatever their status says
STATUSES: tuple[str, ...] = ("ok", "upstream_error", "client_disconnected", "error")
SPEND_GROUPS: tuple[str, ...] = ("team", "day", "model", "key", "route", "status")

Clock = Callable[[], datetime]


# --- records ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    team: str
    name: str
    prefix: str
    limit_usd: Decimal | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "object": "api_key", "team": self.team, "name": self.name, "prefix": self.prefix,
            "limit_usd": None if self.limit_usd is None else usd_text(self.limit_usd),
            "created_at": self.created_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation: ``amount_usd`` held for one request until it settles, is released, or ``expires_at`` passes."""

    id: str
    team: str
    key_id: str | None
    amount_usd: Decimal
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Admission:
    hold: Hold
    budgets: tuple[BudgetStatus, ...]  # status AFTER this reservation
    explanation: str = ""

    @property
    def remaining_usd(self) -> Decimal | None:
        """The tightest limit's remaining budget (``None`` when no limit applies)."""
        return tightest_remaining(self.budgets)

    @property
    def warning(self) -> str | None:
        """Plain-ASCII text for ``x-hermes-budget-warning`` when a soft limit is passed."""
        return soft_warning(self.budgets)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    request_id: str
    started_at: datetime
    team: str
    key_id: str | None
    key_name: str | None
    model: str
    route: str
    reasoning: bool
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal | None  # None: unknown cost (unpriced route), never stored as 0
    estimated: bool
    status: str  # one of STATUSES
    latency_ms: float
    ttft_ms: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.request_id, "started_at": self.started_at.isoformat(), "team": self.team,
            "key_id": self.key_id, "key_name": self.key_name, "model": self.model, "route": self.route,
            "reasoning": self.reasoning, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": None if self.cost_usd is None else usd_text(self.cost_usd), "estimated": self.estimated,
            "status": self.status, "latency_ms": self.latency_ms, "ttft_ms": self.ttft_ms,
        }


# --- the protocol ----------------------------------------------------------------------------------------------------


@runtime_checkable
class Ledger(Protocol):
    async def start(self) -> None:
        """Connect and run migrations; raise ``LedgerUnavailable`` when the store cannot be reached."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """For readiness probes: raise ``LedgerUnavailable`` when the store does not answer."""

    async def reserve(
        self, policy: TeamPolicy, key: KeyRecord | None, amount_usd: Decimal, *, now: datetime | None = None
    ) -> Admission:
        """Hold ``amount_usd`` for one request, atomically across tasks and processes; raise ``BudgetExceeded``
        when any budget window (or the key's own limit) would be passed."""
        ...

    async def settle(self, hold: Hold, record: RequestRecord) -> None:
        """Insert the request row (once per ``request_id``) and drop its hold, in one durable transaction."""

    async def release(self, hold: Hold) -> None:
        """Drop a hold without a row (an error before any token)."""

    async def budget_status(
        self, policy: TeamPolicy, *, now: datetime | None = None, key: KeyRecord | None = None
    ) -> tuple[BudgetStatus, ...]: ...

    async def create_key(
        self, team: str, name: str | None = None, limit_usd: Decimal | None = None
    ) -> tuple[str, KeyRecord]: ...

    async def verify_key(self, plaintext: str) -> KeyRecord | None: ...

    async def list_keys(self, team: str | None = None) -> list[KeyRecord]: ...

    async def revoke_key(self, key_id_or_name: str, team: str | None = None) -> KeyRecord | None: ...

    async def spend(
        self,
        *,
        team: str | None,
        by: str | None,
        since: datetime | None,
        until: datetime | None,
        tz: str = "UTC",
    ) -> list[dict[str, Any]]: ...

    async def requests(self, *, team: str | None = None, limit: int = 100) -> list[RequestRecord]: ...


# --- money and time --------------------------------------------------------------------------------------------------


def cost_amount(value: Decimal) -> Decimal:
    """A settled cost as stored: rounded half-even to the nano-dollar."""
    return tidy(_checked(value, "cost_usd").quantize(NANO, rounding=ROUND_HALF_EVEN))


def hold_amount(value: Decimal) -> Decimal:
    """A reservation as stored: rounded up to the nano-dollar, so a hold never covers less than asked."""
    return tidy(_checked(value, "amount_usd").quantize(NANO, rounding=ROUND_CEILING))


def _checked(value: Decimal, what: str) -> Decimal:
    if not isinstance(value, Decimal):
        raise TypeError(f"{what} must be a Decimal, got {type(value).__name__}")
    if not value.is_finite() or value < 0:
        raise ValueError(f"{what} must be a finite, non-negative amount of USD, got {value}")
    return value


def to_nanos(value: Decimal) -> int:
    return int(value.quantize(NANO).scaleb(9))


def from_nanos(value: int | None) -> Decimal:
    return tidy(Decimal(value or 0).scaleb(-9))


def to_micros(moment: datetime) -> int:
    delta = require_aware(moment) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def floor_bucket(moment: datetime) -> datetime:
    micros = to_micros(moment)
    size = int(BUCKET.total_seconds()) * 1_000_000
    return from_micros(micros - micros % size)


def ceil_bucket(moment: datetime) -> datetime:
    floor = floor_bucket(moment)
    return floor if floor == moment else floor + BUCKET


def check_record(record: RequestRecord) -> None:
    if record.status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {record.status!r}")
    for name in ("prompt_tokens", "completion_tokens", "reasoning_tokens"):
        if getattr(record, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(record, name)}")
    if not record.request_id:
        raise ValueError("request_id is required")
    require_aware(record.started_at, "started_at")


def check_spend_args(by: str | None, since: datetime | None, until: datetime | None, tz: str = "UTC") -> None:
    if by is not None and by not in SPEND_GROUPS:
        raise ValueError(f"cannot group spend by {by!r} (choose one of {', '.join(SPEND_GROUPS)})")
    for moment in (since, until):
        if moment is not None:
            require_aware(moment)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}") from None


def spend_rows(
    by: str | None, rows: Sequence[Sequence[Any]], key_names: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Report rows from (group, requests, prompt, completion, reasoning, cost, unknown-cost count, a key name);
    grouped by key, a row is named by the key's current name (else the name it had when used, else its id)."""
    result = []
    for grp, count, prompt, completion, reasoning, cost, unknown, key_name in rows:
        row: dict[str, Any] = {
            "group": grp, "requests": int(count), "prompt_tokens": int(prompt or 0),
            "completion_tokens": int(completion or 0), "reasoning_tokens": int(reasoning or 0),
            "cost_usd": cost, "unknown_cost_requests": int(unknown or 0),
        }
        if by == "key":
            row["key_id"] = grp or None
            row["group"] = (key_names or {}).get(grp) or key_name or grp or "(no key)"
        result.append(row)
    if by == "day":
        result.sort(key=lambda r: r["group"])
    else:
        result.sort(key=lambda r: (-r["cost_usd"], r["group"]))
    return result


# --- budget windows over the roll-up ---------------------------------------------------------------------------------


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


def measure_query(
    team: str, spans: Sequence[Span], key_id: str | None, now: datetime, *, when: Callable[[datetime], Any],
    first: int = 1,
) -> tuple[str, list[Any]]:
    """ONE statement (so one snapshot) measuring the team's holds, the spend of each window and the key's state.

    Numbered placeholders (``$n``; SQLite reads them as ``?NNN`` after :func:`sqlite_placeholders`), starting at
    ``first``. Columns: reserved, one per span, then (key name, limit, spent, revoked, reserved) when ``key_id``.
    """
    params: list[Any] = [team, when(now)]
    t, n = f"${first}", f"${first + 1}"

    def param(value: Any) -> str:
        params.append(value)
        return f"${first + len(params) - 1}"

    columns = [f"(SELECT COALESCE(SUM(amount_usd), 0) FROM holds WHERE team = {t} AND expires_at > {n})"]
    for span in spans:
        if span.is_total:
            columns.append(f"(SELECT COALESCE(MAX(spent_usd), 0) FROM team_totals WHERE team = {t})")
            continue
        terms = []
        if span.bucket_from is not None and span.bucket_to is not None:
            terms.append(f"(SELECT COALESCE(SUM(cost_usd), 0) FROM spend_buckets WHERE team = {t} "
                         f"AND bucket_start >= {param(when(span.bucket_from))} "
                         f"AND bucket_start < {param(when(span.bucket_to))})")
        for lo, hi in span.edges:
            terms.append(f"(SELECT COALESCE(SUM(cost_usd), 0) FROM requests WHERE team = {t} "
                         f"AND started_at >= {param(when(lo))} AND started_at < {param(when(hi))})")
        columns.append(" + ".join(terms) or "0")
    if key_id is not None:
        k = param(key_id)
        columns += [
            f"(SELECT name FROM keys WHERE id = {k})",
            f"(SELECT limit_usd FROM keys WHERE id = {k})",
            f"(SELECT spent_usd FROM keys WHERE id = {k})",
            f"(SELECT revoked_at IS NOT NULL FROM keys WHERE id = {k})",
            f"(SELECT COALESCE(SUM(amount_usd), 0) FROM holds WHERE key_id = {k} AND expires_at > {n})",
        ]
    return "SELECT " + ", ".join(columns), params


def sqlite_placeholders(sql: str) -> str:
    return re.sub(r"\$(\d+)", r"?\1", sql)


def read_measure(
    row: Sequence[Any], spans: Sequence[Span], key: KeyRecord | None, money: Callable[[Any], Decimal]
) -> tuple[list[Decimal], Decimal, KeyState | None]:
    reserved = money(row[0])
    spent = [money(row[1 + i]) for i in range(len(spans))]
    key_state = None
    if key is not None:
        name, limit, key_spent, revoked, key_reserved = row[1 + len(spans):1 + len(spans) + 5]
        if name is None:  # deleted: treat as revoked
            key_state = KeyState(key.id, key.name, key.limit_usd, ZERO, ZERO, revoked=True)
        else:
            key_state = KeyState(key.id, name, None if limit is None else money(limit), money(key_spent),
                                 money(key_reserved), revoked=bool(revoked))
    return spent, reserved, key_state


@dataclass(frozen=True, slots=True)
class KeyState:
    """A key as the ledger knows it inside the reserve transaction."""

    id: str
    name: str
    limit_usd: Decimal | None
    spent_usd: Decimal
    reserved_usd: Decimal
    revoked: bool


def usages_for(
    spans: Sequence[Span], spent: Sequence[Decimal], reserved: Decimal, key: KeyState | None, policy: TeamPolicy
) -> list[Usage]:
    """Pair each window with what was measured; every hold counts in every window (it happens now)."""
    usages = [
        Usage(span.rule.window, span.rule.limit_usd, amount, reserved, span.rule.soft_limit_usd, span.end)
        for span, amount in zip(spans, spent, strict=True)
    ]
    if key is not None:
        limit = effective_key_limit(key.limit_usd, policy.key_limit_usd)
        if limit is not None:
            usages.append(Usage(KEY_WINDOW, limit, key.spent_usd, key.reserved_usd))
    return usages


def admit(
    policy: TeamPolicy, key: KeyState | None, amount: Decimal, usages: Sequence[Usage]
) -> Decision:
    """The pure decision, or the error the client sees."""
    if key is not None and key.revoked:
        raise AuthenticationError("Incorrect API key provided (revoked).")
    decision = decide(usages, amount, team=policy.name, key_name=key.name if key else None, tz=policy.timezone)
    if not decision.allowed:
        refused = next(b for b in decision.budgets if b.window == decision.rule)
        headers = {
            "x-hermes-budget-remaining-usd": usd_text(refused.remaining_usd),
            "x-hermes-budget-window": refused.window,
        }
        if refused.resets_at is not None:
            headers["x-hermes-budget-resets-at"] = refused.resets_at.isoformat()
        raise BudgetExceeded(decision.explanation, headers=headers)
    return decision


def new_key(team: str, name: str | None, limit_usd: Decimal | None, now: datetime) -> tuple[str, KeyRecord, str]:
    """A new key: (plaintext, its record, the hash to store). The plaintext is shown once and never stored."""
    keyutil.check_name(name)
    limit = keyutil.parse_usd(limit_usd)
    plaintext = keyutil.generate_key()
    key_id = keyutil.new_key_id()
    record = KeyRecord(key_id, team, name or key_id, keyutil.display_prefix(plaintext), limit, now, None)
    return plaintext, record, keyutil.hash_key(plaintext)


def new_hold(policy: TeamPolicy, key: KeyRecord | None, amount_usd: Decimal, moment: datetime,
             ttl: timedelta) -> Hold:
    """The reservation a request would take (rounded up, never under-reserving), expiring after ``ttl``."""
    if key is not None and key.team != policy.name:
        raise ValueError(f"key {key.id} belongs to team {key.team!r}, not {policy.name!r}")
    return Hold(f"hold_{os.urandom(16).hex()}", policy.name, key.id if key else None, hold_amount(amount_usd),
                moment + ttl)


def needs_hold(policy: TeamPolicy, key: KeyRecord | None) -> bool:
    """A reservation only matters when some limit applies; otherwise reserve does no I/O."""
    if policy.budgets:
        return True
    return key is not None and effective_key_limit(key.limit_usd, policy.key_limit_usd) is not None


def describe_budgets(budgets: Sequence[BudgetStatus], tz: str = "UTC") -> list[str]:
    lines = []
    for b in budgets:
        soft = f", soft {format_usd(b.soft_limit_usd)}" if b.soft_limit_usd is not None else ""
        flag = "  [past soft limit]" if b.soft_exceeded else ""
        lines.append(
            f"{b.window:<8} spent {format_usd(b.spent_usd)} + reserved {format_usd(b.reserved_usd)} "
            f"of {format_usd(b.limit_usd)}{soft}; remaining {format_usd(b.remaining_usd)}; "
            f"resets {format_reset(b.resets_at, tz)}{flag}"
        )
    return lines


def budget_json(budget: BudgetStatus) -> dict[str, Any]:
    return {
        "window": budget.window,
        "limit_usd": usd_text(budget.limit_usd),
        "soft_limit_usd": None if budget.soft_limit_usd is None else usd_text(budget.soft_limit_usd),
        "spent_usd": usd_text(budget.spent_usd),
        "reserved_usd": usd_text(budget.reserved_usd),
        "remaining_usd": usd_text(budget.remaining_usd),
        "resets_at": None if budget.resets_at is None else budget.resets_at.isoformat(),
        "soft_exceeded": budget.soft_exceeded,
    }


def spend_total(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {"group": "total", "requests": 0, "prompt_tokens": 0, "completion_tokens": 0,
                             "reasoning_tokens": 0, "cost_usd": ZERO, "unknown_cost_requests": 0}
    for row in rows:
        for name in total:
            if name != "group":
                total[name] += row[name]
    total["cost_usd"] = tidy(total["cost_usd"])
    return total


def spend_row_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: usd_text(v) if isinstance(v, Decimal) else v for k, v in row.items()}
