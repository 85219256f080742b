"""The pages: sign in and out, the overview of every team (admin), a team's page."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web

from hermes_proxy.appkeys import LEDGER, METRICS, current_config
from hermes_proxy.auth import is_admin_token
from hermes_proxy.dashboard import charts, reads
from hermes_proxy.dashboard.guard import SESSIONS, Viewer, team_of, viewer
from hermes_proxy.dashboard.html import csrf_field, esc, message_page, page, table, url
from hermes_proxy.dashboard.report import PERIODS, TeamReport, period_of, team_report
from hermes_proxy.dashboard.session import COOKIE, PRE_COOKIE, clear_cookie, same_origin, set_cookie
from hermes_proxy.errors import HermesError
from hermes_proxy.ledger.base import RequestRecord
from hermes_proxy.money import format_usd
from policies.budget import format_reset
from policies.windows import zone


def usd(amount: Decimal | None, places: int = 4) -> str:
    return esc(format_usd(amount, places=places))


def exports(table_name: str, **params: str | None) -> str:
    links = " ".join(f'<a class="export" data-table="{esc(table_name)}" data-format="{fmt}" '
                     f'href="{esc(url(f"/ui/export/{table_name}.{fmt}", **params))}">{fmt.upper()}</a>'
                     for fmt in ("csv", "json"))
    return f'<span class="exports">export {links}</span>'


# --- sign in / out --------------------------------------------------------------------------------------------------


def _login_form(request: web.Request, error: str | None, status: int = 200) -> web.Response:
    pre = os.urandom(18).hex()
    config = current_config(request.app)
    kinds = [k for k, on in (("the admin key", config.server.admin_key is not None),
                             ("a team key (hp-…)", config.server.auth == "keys")) if on]
    problem = f'<p class="error" id="login-error">{esc(error)}</p>' if error else ""
    content = (
        '<section class="login"><h1>Sign in</h1>'
        f'<p class="muted">Paste {" or ".join(kinds) or "a key"}. It is checked once and never stored in the page, '
        "its address or the browser's storage: the session lives in an HttpOnly cookie.</p>"
        f'{problem}<form method="post" action="/ui/login" autocomplete="off">'
        f'{csrf_field(request.app[SESSIONS].csrf("login:" + pre))}'
        '<label for="key">Key</label><input id="key" name="key" type="password" required autofocus>'
        '<button type="submit" id="sign-in">Sign in</button></form></section>'
    )
    response = page("Sign in", content, status=status)
    set_cookie(response, request, PRE_COOKIE, pre, 3600)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    if await viewer(request) is not None:
        raise web.HTTPSeeOther("/ui")
    return _login_form(request, None)


async def login(request: web.Request) -> web.StreamResponse:
    sessions = request.app[SESSIONS]
    form = await request.post()
    pre = request.cookies.get(PRE_COOKIE, "")
    if not same_origin(request) or not pre or not sessions.csrf_ok("login:" + pre, form.get("csrf")):
        return _login_form(request, "The form expired or came from another site: sign in again.", 403)
    key = form.get("key")
    key = key.strip() if isinstance(key, str) else ""
    config = current_config(request.app)
    if is_admin_token(config, key):
        token, _ = sessions.issue("admin")
        target = "/ui"
    else:
        record = await request.app[LEDGER].verify_key(key) if config.server.auth == "keys" else None
        if record is None or config.team(record.team) is None:
            return _login_form(request, "That key is not valid (unknown or revoked).", 401)
        token, _ = sessions.issue("team", record.team, record.id)
        target = url("/ui/team", team=record.team)
    response = web.HTTPSeeOther(target)
    set_cookie(response, request, COOKIE, token, sessions.ttl_s)
    clear_cookie(response, request, PRE_COOKIE)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    sessions = request.app[SESSIONS]
    form = await request.post()
    who = await viewer(request)
    if who is not None:
        if not same_origin(request) or not sessions.csrf_ok(who.session.nonce, form.get("csrf")):
            return message_page("Not signed out", "The form came from another site.", 403, who.session, who.csrf)
        sessions.log_out(who.session)
    response = web.HTTPSeeOther("/ui/login")
    clear_cookie(response, request, COOKIE)
    raise response


async def signed_in(request: web.Request) -> Viewer:
    who = await viewer(request)
    if who is None:
        raise web.HTTPSeeOther("/ui/login")
    return who


# --- overview (admin) -----------------------------------------------------------------------------------------------


def _budget_cell(report_budgets: Any, tz: str) -> str:
    if not report_budgets:
        return '<span class="muted">no limit</span>'
    parts = []
    for b in report_budgets:
        state = "over" if b.remaining_usd <= 0 else "soft" if b.soft_exceeded else "ok"
        parts.append(f'<div>{charts.gauge(b)} <span class="small">{esc(b.window)}: {usd(b.spent_usd, 2)} of '
                     f'{usd(b.limit_usd, 2)} <span class="tag {state}">{state}</span></span></div>')
    return "".join(parts)


async def overview(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    if not who.session.admin:
        raise web.HTTPSeeOther(url("/ui/team", team=who.session.team))
    config, ledger = current_config(request.app), request.app[LEDGER]
    period = period_of(request.query.get("period"))
    now = datetime.now(UTC)
    since = now - _span(period)
    names = [t.name for t in config.teams]
    totals = await reads.team_totals(ledger, names, since.replace(minute=0, second=0, microsecond=0))
    live = await reads.live(ledger, now)
    rows = []
    for team in config.teams:
        budgets = await ledger.budget_status(team, now=now)
        cost, count = totals.get(team.name, (Decimal(0), 0))
        held = live.get(team.name, reads.Live(0, Decimal(0)))
        rows.append([
            f'<a href="{esc(url("/ui/team", team=team.name, period=period))}">{esc(team.name)}</a>',
            _budget_cell(budgets, team.timezone), usd(cost, 2), f"{count:,}",
            f'<span data-live="in_flight:{esc(team.name)}">{held.in_flight}</span>',
            f'<span data-live="reserved:{esc(team.name)}">{usd(held.reserved_usd)}</span>',
        ])
    content = (
        f"<h1>Teams</h1>{_periods('/ui', period)}"
        '<section><div class="stats">'
        f'<div><div class="muted"><span id="live-dot" class="live-dot"></span>in flight (all processes)</div>'
        f'<div class="stat" data-live="in_flight">{sum(v.in_flight for v in live.values())}</div></div>'
        f'<div><div class="muted">in flight (this process)</div><div class="stat" data-live="process_in_flight">'
        f"{_process_in_flight(request)}</div></div>"
        f'<div><div class="muted">spent, last {esc(period)}</div><div class="stat">'
        f"{usd(sum((c for c, _ in totals.values()), Decimal(0)), 2)}</div></div></div></section>"
        f'<section><h2>Every team</h2>{table(["Team", "Budgets", f"Spent ({period})", "Requests", "In flight", "Reserved"], rows, numeric=(2, 3, 4, 5), table_id="teams")}'
        '<p class="small muted">Spend per team from the hourly roll-up; budgets as the proxy enforces them.</p>'
        "</section>"
    )
    return page("Teams", content, session=who.session, csrf=who.csrf, live_url="/ui/live")


def _span(period: str) -> timedelta:
    number, unit = int(period[:-1]), period[-1]
    return timedelta(hours=number) if unit == "h" else timedelta(days=number)


def _periods(path: str, current: str, **params: str | None) -> str:
    links = "".join(f'<a class="{"current" if p == current else ""}" href="{esc(url(path, **params, period=p))}">'
                    f"{esc(p)}</a>" for p in PERIODS)
    return f'<nav class="periods">Period: {links}</nav>'


def _process_in_flight(request: web.Request) -> int:
    value = request.app[METRICS].registry.get_sample_value("hermes_in_flight_requests")
    return int(value or 0)


# --- a team ---------------------------------------------------------------------------------------------------------


def _budgets(r: TeamReport) -> str:
    if not r.budgets:
        return '<p class="muted" id="no-budgets">No spend limit applies to this team.</p>'
    rows = []
    for b in r.budgets:
        w = esc(b.window)
        state = "over" if b.remaining_usd <= 0 else "soft" if b.soft_exceeded else "ok"
        rows.append([
            f'{w} <span class="tag {state}">{"past soft limit" if state == "soft" else state}</span>',
            charts.gauge(b),
            f'<span data-live="spent:{w}">{usd(b.spent_usd)}</span>',
            f'<span data-live="reserved:{w}">{usd(b.reserved_usd)}</span>',
            f'<span data-live="left:{w}">{usd(b.remaining_usd)}</span>',
            "-" if b.soft_limit_usd is None else usd(b.soft_limit_usd, 2), usd(b.limit_usd, 2),
            esc(format_reset(b.resets_at, r.tz)),
        ])
    return table(["Window", "", "Spent", "Reserved", "Left", "Soft limit", "Hard limit", "Resets"], rows,
                 numeric=(2, 3, 4, 5, 6), table_id="budgets")


def _spend_table(r: TeamReport, by: str) -> str:
    rows = r.spend[by]
    body = []
    for row in rows:
        flags = []
        if row["estimated_requests"]:
            flags.append(f'<span class="tag est" title="usage counted by the proxy">{row["estimated_requests"]:,} '
                         f"estimated ({usd(row['estimated_cost_usd'])})</span>")
        if row["learned_price_requests"]:
            flags.append(f'<span class="tag learned" title="at a price above the configured one">'
                         f'{row["learned_price_requests"]:,} learned price ({usd(row["learned_price_cost_usd"])})</span>')
        if row["unknown_cost_requests"]:
            flags.append(f'<span class="tag est">{row["unknown_cost_requests"]:,} unknown cost</span>')
        if row["cached_requests"]:
            flags.append(f'<span class="tag cached" title="answered from the response cache">'
                         f'{row["cached_requests"]:,} cached, saved {usd(row["saved_usd"])}</span>')
        body.append([esc(row["group"]), f"{row['requests']:,}", f"{row['prompt_tokens']:,}",
                     f"{row['completion_tokens']:,}", f"{row['reasoning_tokens']:,}", usd(row["cost_usd"]),
                     " ".join(flags)])
    if not body:
        return '<p class="muted">No requests in this period.</p>'
    label = {"key": "Key", "model": "Model", "reasoning": "Reasoning"}[by]
    return table([label, "Requests", "Prompt", "Completion", "Reasoning tok.", "Cost", "Marked"], body,
                 numeric=(1, 2, 3, 4, 5), table_id=f"by-{by}")


def _top(r: TeamReport) -> str:
    if not r.top:
        return '<p class="muted">No priced requests in this period.</p>'

    def marks(q: RequestRecord) -> str:
        tags = []
        if q.estimated:
            tags.append('<span class="tag est">estimated</span>')
        if q.learned_price:
            tags.append('<span class="tag learned">learned price</span>')
        if q.status != "ok":
            tags.append(f'<span class="tag">{esc(q.status)}</span>')
        return " ".join(tags)

    rows = [[esc(f"{q.started_at.astimezone(zone(r.tz)):%Y-%m-%d}") + "&nbsp;" +
             esc(f"{q.started_at.astimezone(zone(r.tz)):%H:%M}"), f"<code>{esc(q.request_id)}</code>",
             esc(q.key_name or q.key_id or "-"), esc(q.model), "on" if q.reasoning else "off",
             f"{q.prompt_tokens:,}", f"{q.completion_tokens:,}", usd(q.cost_usd), marks(q)] for q in r.top]
    return table(["Started", "Request", "Key", "Model", "Reasoning", "Prompt", "Completion", "Cost", "Marked"], rows,
                 numeric=(5, 6, 7), table_id="top-requests")


async def team_page(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    try:
        policy = team_of(request, who, request.query.get("team") or None)
    except HermesError as exc:
        return message_page("Not available", exc.message, exc.status, who.session, who.csrf)
    period = period_of(request.query.get("period"))
    r = await team_report(current_config(request.app), request.app[LEDGER], policy, period, key=who.key)
    team = policy.name
    span = {"team": team, "since": period}
    breakdowns = "".join(
        f'<section><h2>Spend by {by} {exports("spend-" + by, **span)}</h2>{_spend_table(r, by)}</section>'
        for by in ("model", "key", "reasoning"))
    content = (
        f'<h1 id="team-name">{esc(team)}</h1>{_periods("/ui/team", period, team=team)}'
        '<section><div class="stats">'
        f'<div><div class="muted"><span id="live-dot" class="live-dot"></span>in flight now</div>'
        f'<div class="stat" data-live="in_flight" id="in-flight">{r.live.in_flight}</div></div>'
        f'<div><div class="muted">reserved now</div><div class="stat" data-live="reserved">'
        f"{usd(r.live.reserved_usd)}</div></div>"
        f'<div><div class="muted">spent, last {esc(period)}</div><div class="stat" id="period-cost">'
        f"{usd(r.period_cost, 2)}</div></div>"
        f'<div><div class="muted">requests, last {esc(period)}</div><div class="stat">{r.period_requests:,}</div>'
        f'</div></div><p class="small muted">Times in {esc(r.tz)}.</p></section>'
        f'<section><h2>Budgets {exports("budgets", team=team)}</h2>{_budgets(r)}</section>'
        f'<section><h2>Spend per hour, last 48 hours {exports("hourly", team=team)}</h2>'
        f'{charts.bars(r.hourly, title="Spend per hour", hourly=True, chart_id="chart-hourly")}</section>'
        f'<section><h2>Spend per day, last {esc(period)} {exports("daily", **span)}</h2>'
        f'{charts.bars(r.daily, title="Spend per day", hourly=False, chart_id="chart-daily")}</section>'
        f"{breakdowns}"
        f'<section><h2>Most expensive requests {exports("requests", **span)}</h2>{_top(r)}'
        '<p class="small muted">Estimated: usage counted by the proxy (the upstream sent none) or a request whose '
        "process stopped, billed from its last checkpoint. Learned price: reserved at, or revealing, a price above "
        "the configured one.</p></section>"
    )
    return page(team, content, session=who.session, csrf=who.csrf, live_url=url("/ui/live", team=team))
