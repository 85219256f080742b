"""Stage 3, admit: the team's and the key's rate limits, then the worst-case reservation in the ledger.

A refusal is a 429 (``rate_limit_exceeded`` or ``insufficient_quota``) and is counted in the metrics. A client that
leaves while the ledger decides leaves no hold behind, whatever the ledger decided.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from hermes_proxy.alerts.events import spawn
from hermes_proxy.config import Route
from hermes_proxy.errors import BudgetExceeded
from hermes_proxy.ledger.base import Admission, HoldInfo, Ledger, Progress
from hermes_proxy.pipeline.plan import Plan
from hermes_proxy.pipeline.types import CallTracker, Principal, Services
from hermes_proxy.pricing import cost_of
from hermes_proxy.usage import Usage

log = logging.getLogger("hermes_proxy.gateway")


@dataclass(frozen=True, slots=True)
class Admitted:
    admission: Admission
    #: OpenAI's x-ratelimit-* headers for this request (empty when no rate limit applies)
    rate_headers: dict[str, str]


def price_key(plan: Plan, route: Route) -> str:
    """Learned prices are per alias and route: the factor is relative to that route's configured price."""
    return f"{plan.model.alias}/{route.label}"


async def admit(services: Services, plan: Plan, principal: Principal, info: HoldInfo, *,
                progress: Progress | None = None, price_keys: Sequence[str] | None = None) -> Admitted:
    """``progress`` is what the hold bills if the request dies before its first checkpoint (default: its prompt at
    the primary route's price); ``price_keys`` the learned prices its reservation follows (default: its routes')."""
    team, key = principal.team, principal.key
    metrics = services.metrics
    rate_headers: dict[str, str] = {}
    ticket = None
    if services.rate_limiter is not None:
        decision = await services.rate_limiter.admit(team, key.id if key else None, plan.prompt_tokens)
        if not decision.allowed:
            if metrics is not None:
                metrics.request_refused(team=team.name, model=plan.model.alias, reason="rate_limit")
            raise decision.error()
        rate_headers, ticket = decision.headers, decision.ticket
    try:
        admission = await _reserve(services, plan, principal, info, progress, price_keys)
    except BudgetExceeded as refusal:
        window = refusal.headers.get("x-hermes-budget-window")
        if services.alerts is not None and team.alerts and window and window != "key":
            spawn(services.tracker, services.alerts.refused(services.ledger, team, window), "hard limit")
        if services.rate_limiter is not None and ticket is not None:
            # a request the budget refused takes no rate-limit slot (never raises)
            await services.rate_limiter.refund(team, key.id if key else None, ticket)
        if metrics is not None:
            metrics.request_refused(team=team.name, model=plan.model.alias, reason="budget")
        raise
    return Admitted(admission, rate_headers)


async def _reserve(services: Services, plan: Plan, principal: Principal, info: HoldInfo, progress: Progress | None,
                   price_keys: Sequence[str] | None) -> Admission:
    ledger = services.ledger
    if progress is None:
        # the prompt is what a request that dies before its first checkpoint has certainly cost
        prompt = Usage(prompt_tokens=plan.prompt_tokens, estimated=True)
        progress = Progress(plan.prompt_tokens, 0, 0, cost_of(prompt, services.prices.get(plan.routes[0])))
    if price_keys is None:
        price_keys = [price_key(plan, r) for r in plan.routes]
    task = asyncio.ensure_future(ledger.reserve(principal.team, principal.key, plan.reserve_usd, info=info,
                                                progress=progress, price_keys=price_keys))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        # the reservation may commit after the caller is gone: release it as soon as it is known
        task.add_done_callback(lambda done: _release_orphan(ledger, done, services.tracker))
        raise


def _release_orphan(ledger: Ledger, done: asyncio.Future[Admission], tracker: CallTracker) -> None:
    if done.cancelled() or done.exception() is not None:
        return
    tracker.add_settle(asyncio.ensure_future(_release(ledger, done.result())))


async def _release(ledger: Ledger, admission: Admission) -> None:
    try:
        await ledger.release(admission.hold)
    except Exception:
        log.exception("could not release hold %s of a request whose client left; it expires by itself",
                      admission.hold.id)
