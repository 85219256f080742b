"""The one statement that measures a team's holds, its spend per budget window and its key, and reading its row.

Written once with numbered ``$n`` placeholders; SQLite runs it through :func:`sqlite_placeholders`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from hermes_proxy.ledger.admission import KeyState
from hermes_proxy.ledger.amounts import ZERO
from hermes_proxy.ledger.records import KeyRecord
from hermes_proxy.ledger.spans import Span


def measure_query(
    team: str, spans: Sequence[Span], key_id: str | None, now: datetime, *, when: Callable[[datetime], Any],
    first: int = 1, billed: str | None = None,
) -> tuple[str, list[Any]]:
    """ONE statement (so one snapshot) measuring the team's holds, the spend of each window and the key's state.

    Numbered placeholders (``$n``; SQLite reads them as ``?NNN`` after :func:`sqlite_placeholders`), starting at
    ``first``. Columns: reserved, one per span, then (key name, limit, spent, revoked, reserved) when ``key_id``.
    ``billed`` names a CTE of rows the same statement inserts (team, key_id, started_at, cost), which its snapshot
    does not see: their cost is added to the windows and the key they fall in.
    """
    params: list[Any] = [team, when(now)]
    t, n = f"${first}", f"${first + 1}"

    def param(value: Any) -> str:
        params.append(value)
        return f"${first + len(params) - 1}"

    columns = [f"(SELECT COALESCE(SUM(amount_usd), 0) FROM holds WHERE team = {t} AND expires_at > {n})"]
    for span in spans:
        if span.is_total:
            extra = f" + (SELECT COALESCE(SUM(cost), 0) FROM {billed})" if billed is not None else ""
            columns.append(f"(SELECT COALESCE(MAX(spent_usd), 0) FROM team_totals WHERE team = {t}){extra}")
            continue
        terms = []
        if span.bucket_from is not None and span.bucket_to is not None:
            terms.append(f"(SELECT COALESCE(SUM(cost_usd), 0) FROM spend_buckets WHERE team = {t} "
                         f"AND bucket_start >= {param(when(span.bucket_from))} "
                         f"AND bucket_start < {param(when(span.bucket_to))})")
        for lo, hi in span.edges:
            terms.append(f"(SELECT COALESCE(SUM(cost_usd), 0) FROM requests WHERE team = {t} "
                         f"AND started_at >= {param(when(lo))} AND started_at < {param(when(hi))})")
        if billed is not None and span.start is not None and span.end is not None:
            terms.append(f"(SELECT COALESCE(SUM(cost), 0) FROM {billed} WHERE started_at >= "
                         f"{param(when(span.start))} AND started_at < {param(when(span.end))})")
        columns.append(" + ".join(terms) or "0")
    if key_id is not None:
        k = param(key_id)
        columns += [
            f"(SELECT name FROM keys WHERE id = {k})",
            f"(SELECT limit_usd FROM keys WHERE id = {k})",
            f"(SELECT spent_usd FROM keys WHERE id = {k})"
            + (f" + (SELECT COALESCE(SUM(cost), 0) FROM {billed} WHERE key_id = {k})" if billed is not None else ""),
            f"(SELECT revoked_at IS NOT NULL FROM keys WHERE id = {k})",
            f"(SELECT COALESCE(SUM(amount_usd), 0) FROM holds WHERE key_id = {k} AND expires_at > {n})",
        ]
    return "SELECT " + ", ".join(columns), params


@functools.lru_cache(maxsize=256)  # a handful of distinct queries, converted on every admission otherwise
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
