"""The admission decision for spend, pure: given what a ledger measured, may a request reserve ``amount`` more?

The ledger measures, for every limit that applies (each budget window of the team, and the key's own limit), the settled
spend and the amount held by requests in flight; :func:`decide` says yes or no and explains itself with the numbers.
A request is refused when, for ANY limit, ``spent + reserved + amount > limit`` (reaching the limit exactly is allowed).
The soft limit never refuses; past it (``spent + reserved > soft``, this request included) the decision carries a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal

from hermes_proxy.money import format_usd
from policies.types import BudgetRule
from policies.windows import window_bounds, zone

ZERO = Decimal(0)
CENT = Decimal("0.01")
KEY_WINDOW = "key"


def tidy(value: Decimal) -> Decimal:
    """The same amount, written the way a person would: whole cents as ``0.10``, finer amounts without trailing zeros."""
    cents = value.quantize(CENT)
    return cents if cents == value else value.normalize()


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One limit as it stands: ``remaining_usd = limit - spent - reserved`` (never below 0)."""

    window: str
    limit_usd: Decimal
    soft_limit_usd: Decimal | None
    spent_usd: Decimal
    reserved_usd: Decimal
    remaining_usd: Decimal
    resets_at: datetime | None
    soft_exceeded: bool


@dataclass(frozen=True, slots=True)
class Usage:
    """What the ledger measured for one limit. ``window`` is a budget window or ``"key"`` (a key's lifetime limit)."""

    window: str
    limit_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal
    soft_limit_usd: Decimal | None = None
    resets_at: datetime | None = None

    def status(self, extra: Decimal = ZERO) -> BudgetStatus:
        """The status once ``extra`` more is reserved."""
        reserved = self.reserved_usd + extra
        used = self.spent_usd + reserved
        return BudgetStatus(
            window=self.window,
            limit_usd=self.limit_usd,
            soft_limit_usd=self.soft_limit_usd,
            spent_usd=tidy(self.spent_usd),
            reserved_usd=tidy(reserved),
            remaining_usd=tidy(max(self.limit_usd - used, ZERO)),
            resets_at=self.resets_at,
            soft_exceeded=self.soft_limit_usd is not None and used > self.soft_limit_usd,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """``allowed`` or not, ``rule`` = the window that refused (``None`` when allowed), ``explanation`` in words.

    ``budgets`` is the status AFTER the reservation when allowed, the status as measured when refused.
    """

    allowed: bool
    amount_usd: Decimal
    budgets: tuple[BudgetStatus, ...]
    rule: str | None
    explanation: str

    @property
    def remaining_usd(self) -> Decimal | None:
        return tightest_remaining(self.budgets)

    @property
    def warning(self) -> str | None:
        return soft_warning(self.budgets)


def format_reset(moment: datetime | None, tz: str | tzinfo = "UTC") -> str:
    if moment is None:
        return "never (a lifetime limit)"
    local = moment.astimezone(zone(tz))
    name = tz if isinstance(tz, str) else (local.tzname() or "")
    return f"{local:%Y-%m-%d %H:%M} {name}".rstrip()


def effective_key_limit(key_limit_usd: Decimal | None, team_key_limit_usd: Decimal | None) -> Decimal | None:
    """A key's own limit wins; otherwise the team's default per-key limit; ``None``: no per-key limit."""
    return key_limit_usd if key_limit_usd is not None else team_key_limit_usd


def window_usages(
    rules: Sequence[BudgetRule],
    spent: Sequence[Decimal],
    reserved: Decimal,
    *,
    now: datetime,
    tz: str | tzinfo = "UTC",
) -> list[Usage]:
    """Pair each rule with its measured spend; every in-flight reservation counts in every window (it happens now)."""
    usages = []
    for rule, amount in zip(rules, spent, strict=True):
        _, end = window_bounds(rule.window, now, tz)
        usages.append(Usage(rule.window, rule.limit_usd, amount, reserved, rule.soft_limit_usd, end))
    return usages


def decide(
    usages: Sequence[Usage],
    amount_usd: Decimal,
    *,
    team: str,
    key_name: str | None = None,
    tz: str | tzinfo = "UTC",
) -> Decision:
    """May ``team`` reserve ``amount_usd`` more? Refused when any limit would be passed; the explanation names the team
    (or key), the window, the numbers and when the window resets."""
    if not amount_usd.is_finite() or amount_usd < 0:
        raise ValueError(f"a reservation must be a non-negative amount of USD, got {amount_usd}")
    refusals: list[tuple[Usage, str]] = []
    for usage in usages:
        if usage.spent_usd + usage.reserved_usd + amount_usd > usage.limit_usd:
            refusals.append((usage, _refusal_text(usage, amount_usd, team, key_name, tz)))
    if refusals:
        first = refusals[0][0]
        text = "; ".join(reason for _, reason in refusals)
        return Decision(False, amount_usd, tuple(u.status() for u in usages), first.window, text)
    statuses = tuple(u.status(amount_usd) for u in usages)
    if not usages:
        text = f"team '{team}' has no spend limit"
    else:
        tightest = min(statuses, key=lambda s: s.remaining_usd)
        text = (f"team '{team}': {format_usd(amount_usd)} reserved; tightest limit {_who(tightest.window, key_name)} "
                f"leaves {format_usd(tightest.remaining_usd)} of {format_usd(tightest.limit_usd)}")
    return Decision(True, amount_usd, statuses, None, text)


def tightest_remaining(budgets: Sequence[BudgetStatus]) -> Decimal | None:
    return min((b.remaining_usd for b in budgets), default=None)


def soft_warning(budgets: Sequence[BudgetStatus]) -> str | None:
    """A plain-ASCII line (it goes into a response header) for every limit past its soft limit, or ``None``."""
    parts = [
        f"{b.window} soft limit {format_usd(b.soft_limit_usd)} passed: "
        f"{format_usd(b.spent_usd + b.reserved_usd)} used of {format_usd(b.limit_usd)}"
        for b in budgets
        if b.soft_exceeded and b.soft_limit_usd is not None
    ]
    return "; ".join(parts) or None


def _who(window: str, key_name: str | None) -> str:
    return f"key '{key_name}' limit" if window == KEY_WINDOW else f"{window} budget"


def _refusal_text(usage: Usage, amount: Decimal, team: str, key_name: str | None, tz: str | tzinfo) -> str:
    owner = f"team '{team}' key '{key_name}'" if usage.window == KEY_WINDOW else f"team '{team}'"
    what = "spend limit" if usage.window == KEY_WINDOW else f"{usage.window} budget"
    numbers = f"spent {format_usd(usage.spent_usd)}"
    if usage.reserved_usd:
        numbers += f" + reserved in flight {format_usd(usage.reserved_usd)}"
    numbers += f" + this request up to {format_usd(amount)} would exceed the limit {format_usd(usage.limit_usd)}"
    return f"{owner} {what} exceeded: {numbers}; resets {format_reset(usage.resets_at, tz)}"


def now_utc() -> datetime:
    """The default clock (injectable everywhere it is used)."""
    return datetime.now(UTC)
