"""Stage 2b, the response cache, between plan and admit: decide whether this request uses it, look its answer up; after
the call, keep a fresh answer, and on a hit record what it saved.

A hit is still a request: it passes the rate limits, is admitted against the budget for its charge (the configured
fraction of what the answer first cost; 0 by default), and settles as a request row with status ``cached``, so that
``/v1/spend`` counts it and shows what it saved beside what was spent. A store that does not answer makes the request
a miss (it goes upstream), never an error; an answer that could not be kept is logged and forgotten.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from hermes_proxy.cache.answer import StoredAnswer
from hermes_proxy.cache.key import CacheMode, cache_key, cache_mode
from hermes_proxy.cache.store import CachedEntry
from hermes_proxy.pipeline.plan import Plan
from hermes_proxy.pipeline.types import Outcome, Piece, Principal, Services
from policies.budget import now_utc

log = logging.getLogger("hermes_proxy.cache")
NANO = Decimal("0.000000001")


@dataclass(slots=True)
class CacheStep:
    """This request's use of the cache: its mode and key, the answer found (a hit) and its age, the pieces collected
    to keep (a miss or a refresh)."""

    mode: CacheMode
    key: str | None = None
    hit: StoredAnswer | None = None
    age_s: float | None = None
    pieces: list[Piece] = field(default_factory=list)

    @property
    def header(self) -> str | None:
        """The ``x-hermes-cache`` response header: ``hit``, ``miss`` or ``refresh`` (none when the cache is off)."""
        if self.mode == "off":
            return None
        return "hit" if self.hit is not None else ("refresh" if self.mode == "refresh" else "miss")

    @property
    def keeps_answer(self) -> bool:
        return self.key is not None and self.hit is None


async def look_up(services: Services, plan: Plan, principal: Principal, header: str | None) -> CacheStep:
    team = principal.team
    mode = cache_mode(team, plan.request.body, header, services.config)
    store = services.cache
    if mode == "off" or store is None:
        return CacheStep("off")
    key = cache_key(team=team.name, model=plan.model.alias, route=plan.routes[0].label, decision=plan.decision,
                    max_tokens=plan.max_tokens, body=plan.request.body, config=services.config)
    step = CacheStep(mode, key)
    if mode == "refresh":
        return step
    try:
        entry = await store.get(team.name, key)
    except Exception:
        log.warning("response cache: lookup failed; the request goes upstream", exc_info=True)
        _count(services, team.name, "error")
        return step
    stored = StoredAnswer.from_json(entry.body) if entry is not None else None
    if entry is not None and stored is not None:
        step.hit = stored
        step.age_s = max(0.0, (now_utc() - entry.created_at).total_seconds())
    _count(services, team.name, "hit" if step.hit is not None else "miss")
    return step


def charge_for(services: Services, hit: StoredAnswer) -> Decimal | None:
    """What a hit costs: the configured fraction of the answer's first cost (unknown when that was unknown, unless
    hits are free)."""
    fraction = services.config.cache.hit_cost_fraction
    if fraction == 0:
        return Decimal(0)
    if hit.cost_usd is None:
        return None
    return (hit.cost_usd * fraction).quantize(NANO, rounding=ROUND_HALF_UP)


def worth_keeping(step: CacheStep, outcome: Outcome, route_label: str | None, plan: Plan, structured_ok: bool) -> bool:
    """A complete answer from the route the key names, with nothing wrong: never an error, a stopped stream, an
    answer a fail-over route gave (its key would say otherwise) or one that broke the requested JSON format."""
    return (step.keeps_answer and outcome.status == "ok" and outcome.error is None and structured_ok
            and route_label == plan.routes[0].label and outcome.finish_reason is not None and bool(step.pieces))


async def keep(services: Services, team: str, step: CacheStep, answer: StoredAnswer) -> None:
    """Write the answer (in the background, after the settle); never raises."""
    store, config = services.cache, services.config.cache
    if store is None or step.key is None:
        return
    body = answer.to_json()
    size = len(body.encode("utf-8", "surrogatepass"))
    if size > config.max_entry_bytes:
        log.info("response cache: an answer of %d bytes is over max_entry_bytes (%d); not kept", size,
                 config.max_entry_bytes)
        return
    now = now_utc()
    entry = CachedEntry(team=team, key=step.key, created_at=now, expires_at=now + timedelta(seconds=config.ttl_s),
                        body=body)
    try:
        await store.put(entry, max_team_bytes=config.max_team_bytes)
    except Exception:
        log.warning("response cache: could not keep an answer", exc_info=True)
        return
    if services.metrics is not None:
        services.metrics.cache_stored(team=team, size_bytes=size)


async def record_saving(services: Services, team: str, request_id: str, hit: StoredAnswer,
                        charged: Decimal | None) -> None:
    """What a hit saved (first cost less its charge), beside its request row; never raises."""
    if services.cache is None or hit.cost_usd is None or charged is None:
        return
    saved = hit.cost_usd - charged
    if saved <= 0:
        return
    try:
        await services.cache.record_saving(request_id, saved)
    except Exception:
        log.warning("response cache: could not record what request %s saved", request_id, exc_info=True)
        return
    if services.metrics is not None:
        services.metrics.cache_saved(team=team, saved_usd=saved)


def stored_answer(step: CacheStep, outcome: Outcome, route_label: str, started: float) -> StoredAnswer:
    return StoredAnswer(pieces=tuple(step.pieces), usage=outcome.usage, cost_usd=outcome.cost_usd, route=route_label,
                        duration_s=time.perf_counter() - started)


def _count(services: Services, team: str, result: str) -> None:
    if services.metrics is not None:
        services.metrics.cache_lookup(team=team, result=result)
