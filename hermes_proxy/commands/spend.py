"""``hermes-proxy spend``: what was spent, by team, day, model, key or route, as a table, CSV or JSON.

Times (``--since``/``--until``, and days with ``--by day``) are read in the team's time zone when ``--team`` is given,
else in UTC (``--timezone`` overrides). Requests whose cost is unknown (unpriced route) are counted apart, never as $0;
estimated requests (usage counted locally, or a hold that expired and was billed from its last checkpoint) and
learned-price ones are counted with their share of the cost.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hermes_proxy.commands.keys import add_config_argument, render_table
from hermes_proxy.config import Config, load_config
from hermes_proxy.errors import InvalidRequest
from hermes_proxy.keys import check_team
from hermes_proxy.ledger import open_ledger
from hermes_proxy.ledger.base import (
    SPEND_FIELDS,
    SPEND_GROUPS,
    budget_json,
    describe_budgets,
    spend_row_json,
    spend_total,
)
from hermes_proxy.money import format_usd
from policies.budget import BudgetStatus
from policies.windows import parse_when, zone

COLUMNS = SPEND_FIELDS


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "spend", help="spend report from the ledger",
        description="Spend per team (default), day, model, key, route, status or reasoning (on/off). Times: YYYY-MM-DD, an ISO datetime, "
                    "'today', or a span back from now such as 12h, 7d, 2w.")
    parser.add_argument("--team", help="only this team (default: every team)")
    parser.add_argument("--by", choices=SPEND_GROUPS, help="group rows by this (default: team)")
    parser.add_argument("--since", metavar="WHEN", help="from this time (inclusive)")
    parser.add_argument("--until", metavar="WHEN", help="up to this time (exclusive)")
    parser.add_argument("--timezone", metavar="ZONE", help="IANA zone for times and days (default: the team's, or UTC)")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    add_config_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(getattr(args, "config", None))
    tz, since, until = report_span(config, args.team, args.timezone, args.since, args.until, datetime.now(UTC))
    return asyncio.run(_run(config, args, tz, since, until))


def report_span(config: Config, team: str | None, timezone: str | None, since: str | None, until: str | None,
                now: datetime) -> tuple[str, datetime | None, datetime | None]:
    """The zone and bounds of a report as the user wrote them (``--timezone``, ``--since``, ``--until``): times in the
    team's zone when a team is given, else UTC. Raises ``InvalidRequest`` naming the option."""
    if team is not None:
        check_team(config, team)
    policy = config.team(team) if team is not None else None
    tz = timezone or (policy.timezone if policy is not None else "UTC")
    try:
        zone(tz)
    except (KeyError, ValueError):
        raise InvalidRequest(f"--timezone: unknown time zone {tz!r} (use an IANA name like Europe/Berlin)") from None
    bounds: dict[str, datetime | None] = {}
    for name, raw in (("since", since), ("until", until)):
        try:
            bounds[name] = parse_when(raw, now=now, tz=tz) if raw else None
        except ValueError as exc:
            raise InvalidRequest(f"--{name}: {exc}") from None
    return tz, bounds["since"], bounds["until"]


async def _run(config: Config, args: argparse.Namespace, tz: str, since: datetime | None,
               until: datetime | None) -> int:
    ledger = open_ledger(config.ledger)
    await ledger.start()
    try:
        rows = await ledger.spend(team=args.team, by=args.by, since=since, until=until, tz=tz)
        policy = config.team(args.team) if args.team is not None else None
        budgets = await ledger.budget_status(policy) if policy is not None else ()
    finally:
        await ledger.close()
    total = spend_total(rows)
    label = args.by or "team"
    if args.format == "json":
        sys.stdout.write(spend_json(spend_document(args.team, args.by, tz, since, until, rows, budgets)))
    elif args.format == "csv":
        sys.stdout.write(spend_csv(args.by, rows))
    else:
        _table(label, rows, total, since, until, tz)
        for line in describe_budgets(budgets, tz):
            print("budget  " + line)
    return 0


def spend_document(team: str | None, by: str | None, tz: str, since: datetime | None, until: datetime | None,
                   rows: Sequence[dict[str, Any]], budgets: Sequence[BudgetStatus]) -> dict[str, Any]:
    """The JSON report (``--format json``; the dashboard's JSON export is the same document)."""
    return {
        "team": team, "by": by or "team", "timezone": tz,
        "since": None if since is None else since.isoformat(),
        "until": None if until is None else until.isoformat(),
        "data": [spend_row_json(r) for r in rows], "total": spend_row_json(spend_total(rows)),
        "budgets": [budget_json(b) for b in budgets],
    }


def spend_json(document: dict[str, Any]) -> str:
    """The text ``--format json`` prints."""
    return json.dumps(document, indent=2) + "\n"


def spend_csv(by: str | None, rows: Sequence[dict[str, Any]]) -> str:
    """The text ``--format csv`` prints (the dashboard's CSV export is the same text)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    extra = ["key_id"] if by == "key" else []
    writer.writerow([by or "team", *COLUMNS, *extra])
    for row in rows:
        data = spend_row_json(row)
        writer.writerow([data["group"], *(data[c] for c in COLUMNS), *(data.get(c) for c in extra)])
    return out.getvalue()


def _table(label: str, rows: list[dict[str, Any]], total: dict[str, Any], since: datetime | None,
           until: datetime | None, tz: str) -> None:
    span = " ".join(part for part in (
        f"since {since.astimezone(zone(tz)):%Y-%m-%d %H:%M}" if since else "",
        f"until {until.astimezone(zone(tz)):%Y-%m-%d %H:%M}" if until else "",
    ) if part)
    if not rows:
        print(f"no requests{' ' + span if span else ''}")
        return
    header = (label.upper(), "REQUESTS", "PROMPT", "COMPLETION", "REASONING", "COST", "SAVED*", "UNKNOWN COST",
              "ESTIMATED*", "LEARNED PRICE*")

    def part(count: int, cost: Any) -> str:
        return f"{count:,} ({format_usd(cost)})" if count else "-"

    def cells(row: dict[str, Any]) -> tuple[str, ...]:
        unknown = row["unknown_cost_requests"]
        return (str(row["group"]), f"{row['requests']:,}", f"{row['prompt_tokens']:,}",
                f"{row['completion_tokens']:,}", f"{row['reasoning_tokens']:,}", format_usd(row["cost_usd"]),
                part(row["cached_requests"], row["saved_usd"]), f"{unknown:,}" if unknown else "-",
                part(row["estimated_requests"], row["estimated_cost_usd"]),
                part(row["learned_price_requests"], row["learned_price_cost_usd"]))

    print(render_table(header, [*(cells(r) for r in rows), cells(total)], right=range(1, 10)))
    if span:
        print(f"({span}, {tz})")
    if total["estimated_requests"] or total["learned_price_requests"] or total["cached_requests"]:
        print("* requests (and their part of COST). SAVED: answered from the response cache, and what they would have\n"
              "  cost less what they were billed. ESTIMATED: usage counted by the proxy, or a request whose process\n"
              "  stopped before it settled, billed from its last checkpoint. LEARNED PRICE: reserved at, or revealing,\n"
              "  a price above the configured one.")
