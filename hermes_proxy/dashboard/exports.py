"""``GET /ui/export/{table}.{csv|json}``: every table of the dashboard as a download.

Spend tables (``spend-team``, ``spend-model``, ``spend-key``, ``spend-reasoning``, ``spend-day``, ``spend-route``,
``spend-status``) are exactly what ``hermes-proxy spend --by … --format csv|json`` prints for the same ``team``,
``since``, ``until`` and ``timezone`` (the same functions write both); ``keys.json`` is ``hermes-proxy keys list
--format json``. ``budgets``, ``requests`` (the costliest), ``hourly`` and ``daily`` follow the same conventions
(money as decimal strings, times ISO 8601)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from hermes_proxy.appkeys import LEDGER, current_config
from hermes_proxy.commands.spend import report_span, spend_csv, spend_document, spend_json
from hermes_proxy.dashboard import reads
from hermes_proxy.dashboard.guard import Viewer, api_viewer, team_of
from hermes_proxy.dashboard.report import DEFAULT_PERIOD, HOURLY_HOURS
from hermes_proxy.errors import InvalidRequest, NotFound
from hermes_proxy.ledger.base import SPEND_GROUPS, budget_json
from hermes_proxy.money import usd_text

TABLES = (*(f"spend-{by}" for by in SPEND_GROUPS), "budgets", "keys", "requests", "hourly", "daily")
MAX_REQUESTS = 1000


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _records(items: Sequence[dict[str, Any]], fields: Sequence[str]) -> str:
    return _csv(fields, [[item.get(f) for f in fields] for item in items])


def _json(document: Any) -> str:
    return json.dumps(document, indent=2) + "\n"


def _team(request: web.Request, who: Viewer, *, required: bool) -> str | None:
    asked = request.query.get("team") or None
    if asked is None and (required or not who.session.admin):
        asked = who.session.team
        if asked is None:
            raise InvalidRequest("this table needs ?team=", param="team")
    return None if asked is None else team_of(request, who, asked).name


async def export(request: web.Request) -> web.StreamResponse:
    who = await api_viewer(request)
    name, fmt = request.match_info["table"], request.match_info["format"]
    if name not in TABLES or fmt not in ("csv", "json"):
        raise NotFound(f"no export {name}.{fmt} (tables: {', '.join(TABLES)}; formats: csv, json)")
    config, ledger, now = current_config(request.app), request.app[LEDGER], datetime.now(UTC)
    q = request.query
    team = _team(request, who, required=name in ("budgets", "requests", "hourly", "daily"))
    default_since = None if name.startswith("spend-") or name in ("keys", "budgets") else DEFAULT_PERIOD
    tz, since, until = report_span(config, team, q.get("timezone") or None, q.get("since") or default_since,
                                   q.get("until") or None, now)
    policy = config.team(team) if team is not None else None
    text: str
    if name.startswith("spend-"):
        by = name.removeprefix("spend-")
        group = None if by == "team" else by
        rows = await ledger.spend(team=team, by=group, since=since, until=until, tz=tz)
        if fmt == "csv":
            text = spend_csv(group, rows)
        else:
            statuses = await ledger.budget_status(policy) if policy is not None else ()
            text = spend_json(spend_document(team, group, tz, since, until, rows, statuses))
    elif name == "keys":
        records = [k.to_json() for k in await ledger.list_keys(team)]
        text = _json({"object": "list", "data": records}) if fmt == "json" else _records(
            records, ("id", "team", "name", "prefix", "limit_usd", "created_at", "revoked_at"))
    elif name == "budgets":
        assert policy is not None
        budgets = [budget_json(b) for b in await ledger.budget_status(policy, key=who.key)]
        text = _json({"team": team, "timezone": tz, "budgets": budgets}) if fmt == "json" else _records(
            budgets, ("window", "limit_usd", "soft_limit_usd", "spent_usd", "reserved_usd", "remaining_usd",
                      "resets_at", "soft_exceeded"))
    elif name == "requests":
        assert team is not None and since is not None
        limit = min(max(int(q["limit"]) if q.get("limit", "").isdigit() else 20, 1), MAX_REQUESTS)
        found = [r.to_json() for r in await reads.most_expensive(ledger, team, since, until or now, limit)]
        text = _json({"object": "list", "team": team, "data": found}) if fmt == "json" else _records(
            found, ("id", "started_at", "team", "key_id", "key_name", "model", "route", "reasoning", "prompt_tokens",
                    "completion_tokens", "reasoning_tokens", "cost_usd", "estimated", "learned_price", "status",
                    "latency_ms", "ttft_ms"))
    else:
        assert team is not None
        if name == "hourly" and not q.get("since"):
            since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURLY_HOURS - 1)
        assert since is not None
        buckets = await reads.hourly(ledger, team, since.replace(minute=0, second=0, microsecond=0), until or now)
        if name == "daily":
            buckets = reads.daily(buckets, tz)
        items = [{"start": b.start.isoformat(), "cost_usd": usd_text(b.cost_usd), "requests": b.requests}
                 for b in buckets]
        text = _json({"team": team, "timezone": tz, "data": items}) if fmt == "json" else _records(
            items, ("start", "cost_usd", "requests"))
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", f"hermes-{name}{'-' + team if team else ''}") + f".{fmt}"
    return web.Response(text=text, content_type="text/csv" if fmt == "csv" else "application/json", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                 "Cache-Control": "no-store"})
