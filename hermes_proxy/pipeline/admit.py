"""Stage 3, admit: the team's and the key's rate limits, then the worst-case reservation in the ledger.

A refusal is a 429 (``rate_limit_exceeded`` or ``insufficient_quota``) and is counted in the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from hermes_proxy.errors import BudgetExceeded
from hermes_proxy.ledger.base import Admission
from hermes_proxy.pipeline.plan import Plan
from hermes_proxy.pipeline.types import Principal, Services


@dataclass(frozen=True, slots=True)
class Admitted:
    admission: Admission
    #: OpenAI's x-ratelimit-* headers for this request (empty when no rate limit applies)
    rate_headers: dict[str, str]


async def admit(services: Services, plan: Plan, principal: Principal) -> Admitted:
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
        admission = await services.ledger.reserve(team, key, plan.reserve_usd)
    except BudgetExceeded:
        if services.rate_limiter is not None and ticket is not None:
            # a request the budget refused takes no rate-limit slot (never raises)
            await services.rate_limiter.refund(team, key.id if key else None, ticket)
        if metrics is not None:
            metrics.request_refused(team=team.name, model=plan.model.alias, reason="budget")
        raise
    return Admitted(admission, rate_headers)
