"""The ledger: the protocol the gateway calls, its records, and the logic both backends share (re-exported here).

Money is :class:`~decimal.Decimal` everywhere and is kept to the nano-dollar (1e-9 USD): costs are rounded half-even to
it, reservations rounded *up* to it (a hold never under-reserves). Both backends store exactly these values (SQLite as
integer nano-dollars, PostgreSQL as ``NUMERIC(24, 9)``), so sums are exact and both return the same numbers.

Spend per budget window is read from an hourly roll-up (``spend_buckets``) that ``settle`` updates in the same
transaction as the request row, plus the raw rows for a partial hour at a window edge (zones whose offset is not whole
hours); the lifetime total of a team and of a key are running counters. A reservation therefore costs a handful of
index lookups whatever the history size, and the roll-ups depend on no policy (time zone or windows may change freely).

The parts live in sibling modules: ``protocol`` (the Ledger protocol), ``records`` (keys, holds, admissions, requests),
``amounts`` (money and time as stored), ``spans`` (budget windows over the roll-up), ``measure`` (the measuring
statement), ``admission`` (the decision), ``reports`` (spend reports and budget summaries). Every name stays importable
from here.
"""

from __future__ import annotations

from hermes_proxy.ledger.admission import KeyState, admit, needs_hold, usages_for
from hermes_proxy.ledger.amounts import (
    BUCKET,
    NANO,
    ZERO,
    ceil_bucket,
    cost_amount,
    floor_bucket,
    from_micros,
    from_nanos,
    hold_amount,
    to_micros,
    to_nanos,
)
from hermes_proxy.ledger.measure import measure_query, read_measure, sqlite_placeholders
from hermes_proxy.ledger.protocol import Clock, Ledger
from hermes_proxy.ledger.records import (
    CACHED,
    EXPIRED,
    STATUSES,
    Admission,
    Hold,
    HoldInfo,
    KeyRecord,
    Progress,
    RequestRecord,
    check_record,
    new_hold,
    new_key,
)
from hermes_proxy.ledger.reports import (
    SPEND_FIELDS,
    SPEND_GROUPS,
    budget_json,
    check_spend_args,
    describe_budgets,
    spend_row_json,
    spend_rows,
    spend_total,
)
from hermes_proxy.ledger.spans import Span, SpanCache, span_for
from hermes_proxy.money import format_usd, usd_text
from policies.budget import BudgetStatus, tidy

__all__ = [
    "BUCKET",
    "CACHED",
    "EXPIRED",
    "NANO",
    "SPEND_FIELDS",
    "SPEND_GROUPS",
    "STATUSES",
    "ZERO",
    "Admission",
    "BudgetStatus",
    "Clock",
    "Hold",
    "HoldInfo",
    "KeyRecord",
    "KeyState",
    "Ledger",
    "Progress",
    "RequestRecord",
    "Span",
    "SpanCache",
    "admit",
    "budget_json",
    "ceil_bucket",
    "check_record",
    "check_spend_args",
    "cost_amount",
    "describe_budgets",
    "floor_bucket",
    "format_usd",
    "from_micros",
    "from_nanos",
    "hold_amount",
    "measure_query",
    "needs_hold",
    "new_hold",
    "new_key",
    "read_measure",
    "span_for",
    "spend_row_json",
    "spend_rows",
    "spend_total",
    "sqlite_placeholders",
    "tidy",
    "to_micros",
    "to_nanos",
    "usages_for",
    "usd_text",
]
