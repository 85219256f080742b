"""Money and time as the ledger stores them.

Money is :class:`~decimal.Decimal` kept to the nano-dollar (1e-9 USD): costs are rounded half-even to it, reservations
rounded *up* to it (a hold never under-reserves). SQLite stores integer nano-dollars and integer microseconds since the
epoch; the conversions and the hourly roll-up buckets are here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal, localcontext

from policies.budget import tidy
from policies.windows import require_aware

NANO = Decimal("1e-9")
ZERO = Decimal(0)
BUCKET = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def cost_amount(value: Decimal) -> Decimal:
    """A settled cost as stored: rounded half-even to the nano-dollar."""
    return tidy(_checked(value, "cost_usd").quantize(NANO, rounding=ROUND_HALF_EVEN))


def hold_amount(value: Decimal) -> Decimal:
    """A reservation as stored: rounded up to the nano-dollar, so a hold never covers less than asked."""
    return tidy(_checked(value, "amount_usd").quantize(NANO, rounding=ROUND_CEILING))


def price_factor(value: Decimal) -> Decimal:
    """A learned price factor as stored: a positive Decimal rounded up to 1e-9 (never under-reserving)."""
    if not isinstance(value, Decimal):
        raise TypeError(f"factor must be a Decimal, got {type(value).__name__}")
    if not value.is_finite() or value <= 0:
        raise ValueError(f"a price factor must be a finite amount > 0, got {value}")
    return tidy(value.quantize(NANO, rounding=ROUND_CEILING))


def scaled_hold(amount: Decimal, factor: Decimal) -> Decimal:
    """``amount`` (a stored hold) times ``factor`` (>= 1), rounded up to the nano-dollar exactly as PostgreSQL's
    ``ceil(amount * factor * 1e9) / 1e9`` does."""
    if factor <= 1:
        return amount
    with localcontext() as ctx:
        ctx.prec = 80
        return tidy((amount * factor).quantize(NANO, rounding=ROUND_CEILING))


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
