"""Spend reports and budget summaries: checking the arguments, shaping rows, totals, JSON and text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hermes_proxy.ledger.amounts import ZERO
from hermes_proxy.money import format_usd, usd_text
from policies.budget import BudgetStatus, format_reset, tidy
from policies.windows import require_aware

SPEND_GROUPS: tuple[str, ...] = ("team", "day", "model", "key", "route", "status", "reasoning")


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


#: the numbers of a spend row (and of the total), in order; ``estimated_*``: usage counted locally or a hold that
#: expired before its settle; ``learned_price_*``: reserved at a learned price factor or revealed a higher price;
#: ``cached_requests``: answered from the response cache, ``saved_usd``: what those would have cost less their charge
SPEND_FIELDS: tuple[str, ...] = (
    "requests", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cost_usd", "unknown_cost_requests",
    "estimated_requests", "estimated_cost_usd", "learned_price_requests", "learned_price_cost_usd",
    "cached_requests", "saved_usd",
)


def spend_rows(
    by: str | None, rows: Sequence[Sequence[Any]], key_names: dict[str, str] | None = None,
    money: Callable[[Any], Decimal] = tidy,
) -> list[dict[str, Any]]:
    """Report rows from the columns of ``spend_query`` (group, requests, prompt, completion, reasoning, cost,
    unknown-cost count, estimated count and cost, learned-price count and cost, cached count, saved, a key name), money
    read by ``money``;
    grouped by key, a row is named by the key's current name (else the name it had when used, else its id)."""
    result = []
    for (grp, count, prompt, completion, reasoning, cost, unknown, estimated, estimated_cost, learned, learned_cost,
         cached, saved, key_name) in rows:
        row: dict[str, Any] = {
            "group": grp, "requests": int(count), "prompt_tokens": int(prompt or 0),
            "completion_tokens": int(completion or 0), "reasoning_tokens": int(reasoning or 0),
            "cost_usd": money(cost), "unknown_cost_requests": int(unknown or 0),
            "estimated_requests": int(estimated or 0), "estimated_cost_usd": money(estimated_cost),
            "learned_price_requests": int(learned or 0), "learned_price_cost_usd": money(learned_cost),
            "cached_requests": int(cached or 0), "saved_usd": money(saved),
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
    total: dict[str, Any] = {"group": "total"}
    for name in SPEND_FIELDS:
        total[name] = ZERO if name.endswith("_usd") else 0
        for row in rows:
            total[name] += row[name]
        if name.endswith("_usd"):
            total[name] = tidy(total[name])
    return total


def spend_row_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: usd_text(v) if isinstance(v, Decimal) else v for k, v in row.items()}
