"""The background sender: claims due alerts from the outbox, POSTs them, marks them sent, or schedules a retry with
exponential backoff. Runs in the application's cleanup context, never on a request's path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import aiohttp

from hermes_proxy.alerts.store import AlertStore, Claimed
from hermes_proxy.config import Config
from hermes_proxy.metrics import Metrics
from policies.budget import now_utc
from policies.types import AlertRule

log = logging.getLogger("hermes_proxy.alerts")
MAX_BACKOFF_S = 600.0
BATCH = 20
DEFAULT_RULE = AlertRule(url="")


def _rules(config: Config) -> list[AlertRule]:
    return [rule for team in config.teams for rule in team.alerts]


def poll_interval(config: Config) -> float | None:
    """How often to look for due alerts (retries, other replicas' rows); None: no team has alerts."""
    rules = _rules(config)
    return None if not rules else min(5.0, max(0.05, min(r.retry_backoff_s for r in rules)))


class AlertSender:
    def __init__(self, store: AlertStore, wake: asyncio.Event, config: Callable[[], Config], *,
                 metrics: Metrics | None = None, clock: Callable[[], datetime] = now_utc) -> None:
        self._store = store
        self._wake = wake
        self._config = config
        self._metrics = metrics
        self._clock = clock

    def _rule(self, team: str, url: str) -> AlertRule:
        policy = self._config().team(team)
        for rule in policy.alerts if policy is not None else ():
            if rule.url == url:
                return rule
        return DEFAULT_RULE

    async def run(self) -> None:
        """Until cancelled: send what is due, then wait for a wake-up or the poll interval."""
        async with aiohttp.ClientSession() as session:
            while True:
                self._wake.clear()
                try:
                    busy = await self.send_due(session)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("budget alerts: could not read the outbox; trying again later")
                    busy = False
                if busy:
                    continue
                every = poll_interval(self._config())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), every)

    async def send_due(self, session: aiohttp.ClientSession) -> bool:
        """Claim and post one batch; True when a full batch was claimed (there may be more)."""
        rules = _rules(self._config())
        longest = max([r.timeout_s for r in rules], default=DEFAULT_RULE.timeout_s)
        lease = timedelta(seconds=max(60.0, 3 * longest))
        claimed = await self._store.claim(self._clock(), lease, BATCH)
        await asyncio.gather(*(self._post(session, c) for c in claimed))
        return len(claimed) == BATCH

    async def _post(self, session: aiohttp.ClientSession, alert: Claimed) -> None:
        rule = self._rule(alert.team, alert.url)
        error = None
        try:
            async with session.post(alert.url, data=alert.body.encode(), headers={"content-type": "application/json"},
                                    timeout=aiohttp.ClientTimeout(total=rule.timeout_s)) as response:
                if response.status >= 300:
                    error = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        try:
            if error is None:
                await self._store.sent(alert.dedup_key, self._clock())
            else:
                backoff = min(MAX_BACKOFF_S, rule.retry_backoff_s * 2 ** (alert.attempts - 1))
                log.warning("budget alert to %s failed (attempt %d, next in %.1f s): %s", alert.url, alert.attempts,
                            backoff, error)
                await self._store.failed(alert.dedup_key, self._clock() + timedelta(seconds=backoff), error)
        except Exception:
            log.exception("budget alerts: could not record the outcome of %s; it is retried when its lease ends",
                          alert.dedup_key)
        if self._metrics is not None:
            self._metrics.alert_delivered(team=alert.team, ok=error is None)
