"""Dollars as text, in one place: :func:`usd_text` for machines, :func:`format_usd` for people, and
:func:`usd_from_json` for amounts an upstream reports.

Amounts are :class:`~decimal.Decimal` everywhere. This module imports nothing but :mod:`decimal`: the chat UI imports
it, and it must stay cheap to import.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

__all__ = ["UNKNOWN_USD", "format_usd", "usd_from_json", "usd_text"]

#: what :func:`format_usd` shows for an amount nobody knows (an unpriced route)
UNKNOWN_USD = "—"


def usd_from_json(value: Any) -> Decimal | None:
    """A non-negative finite amount from a JSON number or numeric string; ``None`` for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def usd_text(value: Decimal) -> str:
    """The exact amount, no ``$``, no exponent, at least cents: for JSON, CSV and headers.

    ``usd_text(Decimal("0.000091")) == "0.000091"``, ``usd_text(Decimal("12.5")) == "12.50"``,
    ``usd_text(Decimal("1E+1")) == "10.00"``.
    """
    text = f"{value.normalize():f}"
    if "." not in text:
        return text + ".00"
    whole, frac = text.split(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def format_usd(amount: Decimal | None, *, places: int = 6) -> str:
    """Dollars for people: rounded half-up to ``places`` decimals, trailing zeros dropped down to cents, thousands
    grouped; :data:`UNKNOWN_USD` for ``None``.

    A non-zero amount too small to show at ``places`` keeps two significant digits instead, so a cost never reads as
    free. ``places``: 6 (the default) for the command line, 4 for the chat's running costs, 2 for budgets.

    ``format_usd(Decimal("0.106")) == "$0.106"``, ``format_usd(Decimal("12.5")) == "$12.50"``,
    ``format_usd(Decimal("1234.5678912")) == "$1,234.567891"``, ``format_usd(Decimal("0.000000123")) == "$0.00000012"``,
    ``format_usd(Decimal("0.00004"), places=4) == "$0.00004"``, ``format_usd(Decimal("-0.5")) == "-$0.50"``.
    """
    if amount is None:
        return UNKNOWN_USD
    if not amount.is_finite():
        return f"${amount}"
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if amount and not rounded:
        rounded = amount.quantize(Decimal(1).scaleb(amount.adjusted() - 1), rounding=ROUND_HALF_UP)
    whole, _, frac = f"{rounded:f}".partition(".")
    return f"{sign}${int(whole):,}.{frac.rstrip('0').ljust(2, '0')}"
