"""Which budget alerts are due, and their bodies: :class:`BudgetAlerts` turns what the request path saw (a settle, the
first refusal, a price rise) into outbox rows, once per threshold per window.

Thresholds are read from the team's ``budget_status`` (settled spend) after a settle, and only for teams with alerts
configured; dedup keys this process has already stored are remembered, so once a window's thresholds are all stored,
a settle costs no I/O at all until the next window starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from hermes_proxy.alerts.store import Alert, AlertStore
from hermes_proxy.ledger.base import Ledger
from hermes_proxy.money import format_usd
from policies.budget import BudgetStatus, now_utc
from policies.types import AlertRule, TeamPolicy
from policies.windows import window_bounds

log = logging.getLogger("hermes_proxy.alerts")
EVENTS = ("budget_threshold", "soft_limit", "hard_limit", "price_rise")
_REMEMBER = 10_000


def _usd(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _percent(spent: Decimal, limit: Decimal) -> float | None:
    return None if not limit else round(float(spent / limit * 100), 2)


def render(rule: AlertRule, payload: dict[str, Any]) -> str:
    """The body posted to ``rule.url``: the generic JSON payload, or Slack's ``{"text": ...}``."""
    if rule.format == "slack":
        return json.dumps({"text": slack_text(payload)}, ensure_ascii=False)
    return json.dumps(payload, ensure_ascii=False)


def slack_text(p: dict[str, Any]) -> str:
    team, window, event = p["team"], p.get("window"), p["event"]
    if event == "price_rise":
        return (f":warning: hermes-proxy: route {p['route']} billed {p['factor']}x its configured price "
                f"(team {team}); reservations now use that rate")
    spent = format_usd(Decimal(p["spent_usd"]))
    limit = format_usd(Decimal(p["limit_usd"]))
    what = {"budget_threshold": f"reached {p.get('threshold_percent')}% of its {window} budget",
            "soft_limit": f"passed the soft limit of its {window} budget",
            "hard_limit": f"hit the hard limit of its {window} budget: requests are being refused"}[event]
    return f":rotating_light: hermes-proxy: team *{team}* {what} ({spent} of {limit}, {p['percent']}%)"


class BudgetAlerts:
    """The request path's side of alerts: decide, and insert into the outbox (nothing else); ``wake`` tells this
    process's sender that there is something to post."""

    def __init__(self, store: AlertStore, *, clock: Callable[[], datetime] = now_utc) -> None:
        self.store = store
        self._clock = clock
        self._stored: set[str] = set()
        self.wake = asyncio.Event()

    async def _add(self, alerts: list[Alert]) -> None:
        if not alerts:
            return
        await self.store.add(alerts)
        if len(self._stored) > _REMEMBER:
            self._stored.clear()
        self._stored.update(a.dedup_key for a in alerts)
        self.wake.set()

    def _alerts(self, team: TeamPolicy, event: str, key: str, payload: dict[str, Any], now: datetime) -> list[Alert]:
        return [Alert(f"{rule.url}|{team.name}|{event}|{key}", team.name, event, rule.url, render(rule, payload), now)
                for rule in team.alerts]

    def _window_keys(self, team: TeamPolicy, now: datetime) -> list[str]:
        """The dedup keys of every threshold and soft-limit alert of the team's current windows."""
        keys = []
        for budget in team.budgets:
            at = f"{budget.window}|{_start(budget.window, now, team.timezone)}"
            for rule in team.alerts:
                keys += [f"{rule.url}|{team.name}|budget_threshold|{at}|pct{p}" for p in rule.at_percent]
                if budget.soft_limit_usd is not None:
                    keys.append(f"{rule.url}|{team.name}|soft_limit|{at}|soft")
        return keys

    async def after_settle(self, ledger: Ledger, team: TeamPolicy) -> None:
        """Store the threshold and soft-limit alerts the team's settled spend has crossed in its current windows."""
        if not team.alerts or not team.budgets:
            return
        now = self._clock()
        if all(k in self._stored for k in self._window_keys(team, now)):
            return  # every alert of the current windows is stored already: no I/O
        statuses = await ledger.budget_status(team, now=now)
        alerts: list[Alert] = []
        for status in statuses:
            start = _start(status.window, now, team.timezone)
            for rule in team.alerts:
                for threshold in rule.at_percent:
                    if status.limit_usd and status.spent_usd * 100 >= status.limit_usd * threshold:
                        alerts += self._one(team, rule, "budget_threshold", f"{status.window}|{start}|pct{threshold}",
                                            _budget_payload("budget_threshold", team, status, start, now,
                                                            threshold_percent=threshold), now)
                soft = status.soft_limit_usd
                if soft is not None and status.spent_usd >= soft:
                    alerts += self._one(team, rule, "soft_limit", f"{status.window}|{start}|soft",
                                        _budget_payload("soft_limit", team, status, start, now,
                                                        soft_limit_usd=_usd(soft)), now)
        await self._add([a for a in alerts if a.dedup_key not in self._stored])

    def _one(self, team: TeamPolicy, rule: AlertRule, event: str, key: str, payload: dict[str, Any],
             now: datetime) -> list[Alert]:
        return [Alert(f"{rule.url}|{team.name}|{event}|{key}", team.name, event, rule.url, render(rule, payload), now)]

    async def refused(self, ledger: Ledger, team: TeamPolicy, window: str) -> None:
        """The hard limit of ``window``: the first refusal in that window is alerted."""
        if not team.alerts:
            return
        now = self._clock()
        start = _start(window, now, team.timezone)
        key = f"{window}|{start}|hard"
        if all(f"{r.url}|{team.name}|hard_limit|{key}" in self._stored for r in team.alerts):
            return
        status = next((s for s in await ledger.budget_status(team, now=now) if s.window == window), None)
        if status is None:
            return
        await self._add(self._alerts(team, "hard_limit", key, _budget_payload("hard_limit", team, status, start, now),
                                     now))

    async def price_rise(self, team: TeamPolicy, route: str, factor: Decimal) -> None:
        """A route's reported price rose above its configured one (to ``factor`` times it)."""
        if not team.alerts:
            return
        now = self._clock()
        payload = {"event": "price_rise", "team": team.name, "window": None, "spent_usd": None, "limit_usd": None,
                   "percent": round(float(factor * 100), 2), "window_start": None, "at": now.isoformat(),
                   "route": route, "factor": str(factor.normalize())}
        await self._add(self._alerts(team, "price_rise", f"{route}|{factor.normalize()}", payload, now))


def _start(window: str, now: datetime, tz: str) -> str:
    start = window_bounds(window, now, tz)[0]
    return "total" if start is None else start.isoformat()


def _budget_payload(event: str, team: TeamPolicy, status: BudgetStatus, start: str, now: datetime,
                    **extra: Any) -> dict[str, Any]:
    return {"event": event, "team": team.name, "window": status.window, "spent_usd": _usd(status.spent_usd),
            "limit_usd": _usd(status.limit_usd), "percent": _percent(status.spent_usd, status.limit_usd),
            "window_start": None if start == "total" else start, "at": now.isoformat(), **extra}


def spawn(tracker: Any, coro: Any, what: str) -> None:
    """Run ``coro`` in the background, tracked like a settle (shutdown and ``settled()`` wait for it); never raises."""

    async def guarded() -> None:
        try:
            await coro
        except Exception:
            log.exception("background task failed: %s (an alert is looked for again on the next request)", what)

    tracker.add_settle(asyncio.ensure_future(guarded()))
