"""``GET /ui/live``: the figures a page updates without reloading (polled by the vendored script every few seconds):
requests in flight (their holds in the ledger, every process; and this process's ``hermes_in_flight_requests``),
what they reserve, and each budget window's spent / reserved / left. Keys are the page's ``data-live`` names."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from aiohttp import web

from hermes_proxy.appkeys import LEDGER, METRICS
from hermes_proxy.dashboard import reads
from hermes_proxy.dashboard.guard import api_viewer, team_of
from hermes_proxy.money import format_usd


def _usd(amount: Decimal) -> str:
    return format_usd(amount, places=4)


async def live(request: web.Request) -> web.Response:
    who = await api_viewer(request)
    ledger, now = request.app[LEDGER], datetime.now(UTC)
    held = await reads.live(ledger, now)
    process = request.app[METRICS].registry.get_sample_value("hermes_in_flight_requests")
    body: dict[str, str | int] = {"process_in_flight": int(process or 0), "at": now.isoformat()}
    team = request.query.get("team") or None
    if team is None and who.session.admin:
        body["in_flight"] = sum(v.in_flight for v in held.values())
        for name, v in held.items():
            body[f"in_flight:{name}"] = v.in_flight
            body[f"reserved:{name}"] = _usd(v.reserved_usd)
        return web.json_response(body, headers={"Cache-Control": "no-store"})
    policy = team_of(request, who, team)
    mine = held.get(policy.name, reads.Live(0, Decimal(0)))
    body["in_flight"], body["reserved"] = mine.in_flight, _usd(mine.reserved_usd)
    for b in await ledger.budget_status(policy, now=now, key=who.key):
        body[f"spent:{b.window}"] = _usd(b.spent_usd)
        body[f"reserved:{b.window}"] = _usd(b.reserved_usd)
        body[f"left:{b.window}"] = _usd(b.remaining_usd)
    return web.json_response(body, headers={"Cache-Control": "no-store"})
