"""One chat completion through the stages, in order:

    plan -> admit -> connect -> answer (pieces) -> outcome -> settle

Use it as ``async with gateway.chat(body, principal) as call: async for piece in call: ...``; ``call.info`` is known
on entry (before the first byte goes out) and ``call.outcome`` once the pieces are exhausted. The settle runs on
exit whatever happened (finished, upstream error, client gone), shielded from the handler's cancellation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hermes_proxy.alerts.events import spawn
from hermes_proxy.cache.answer import StoredAnswer
from hermes_proxy.config import Route
from hermes_proxy.errors import HermesError, UpstreamError
from hermes_proxy.ledger.base import CACHED, HoldInfo, Progress, RequestRecord
from hermes_proxy.pipeline.admit import Admitted, admit, price_key
from hermes_proxy.pipeline.answer import Answer
from hermes_proxy.pipeline.cached import (
    CacheStep,
    charge_for,
    keep,
    look_up,
    record_saving,
    stored_answer,
    worth_keeping,
)
from hermes_proxy.pipeline.connect import connect
from hermes_proxy.pipeline.hold import HoldKeeper, checkpoint_interval
from hermes_proxy.pipeline.outcome import UsageMeter
from hermes_proxy.pipeline.plan import BIG_PROMPT_CHARS, Plan, make_plan, prompt_size
from hermes_proxy.pipeline.settle import Timings, settle
from hermes_proxy.pipeline.tool_calls import AnswerChecks
from hermes_proxy.pipeline.types import CallInfo, Outcome, Piece, Principal, Services
from hermes_proxy.pricing import cost_of

SIMULATED_SUFFIX = " (simulated)"
#: a reported cost this much above the configured price (or the factor already learned) is a price rise, not rounding
PRICE_RISE_THRESHOLD = Decimal("1.001")
log = logging.getLogger("hermes_proxy.gateway")


class ChatCall:
    def __init__(self, services: Services, body: Any, principal: Principal, reasoning_header: str | None,
                 request_id: str, *, client_request_id: str | None = None, cache_header: str | None = None) -> None:
        self._services = services
        self._cache_header = cache_header
        self.cache: CacheStep = CacheStep("off")
        self._hit_charge: Decimal | None = None
        self._first_replayed_at: float | None = None
        self.client_request_id = client_request_id
        self._body = body
        self._principal = principal
        self._reasoning_header = reasoning_header
        self.request_id = request_id
        self.started_at = datetime.now(UTC)
        self._t0 = time.perf_counter()
        self._t_upstream: tuple[float, float | None] | None = None
        self._t_finished: float | None = None
        self.info: CallInfo | None = None
        self.outcome: Outcome | None = None
        self._plan: Plan | None = None
        self._admitted: Admitted | None = None
        self._answer: Answer | None = None
        self._meter = UsageMeter()
        self._error: HermesError | None = None
        self._tracked = False
        self._settled = False
        self._keeper: HoldKeeper | None = None
        self._probe_key: str | None = None
        self._price_known = False
        self._in_flight: AbstractContextManager[Any] | None = None

    @property
    def rate_headers(self) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers for this request (empty when no rate limit applies)."""
        return self._admitted.rate_headers if self._admitted else {}

    # --- timings ------------------------------------------------------------------------------------------------

    @property
    def overhead_ms(self) -> float:
        """Time spent in the proxy itself: before the first upstream attempt, and after the upstream finished."""
        now = self._t_finished or time.perf_counter()
        if self._t_upstream is None:
            return (now - self._t0) * 1000
        start, end = self._t_upstream
        return ((start - self._t0) + (now - end if end is not None else 0.0)) * 1000

    @property
    def total_ms(self) -> float:
        return ((self._t_finished or time.perf_counter()) - self._t0) * 1000

    @property
    def ttft_ms(self) -> float | None:
        first = self._answer.first_piece_at if self._answer else self._first_replayed_at
        return None if first is None else (first - self._t0) * 1000

    # --- entering: plan, admit, connect ---------------------------------------------------------------------------

    async def __aenter__(self) -> ChatCall:
        services = self._services
        # counted from the start, so a gateway retired by a config reload waits for this call before closing the
        # upstream clients it is about to use
        services.tracker.started()
        self._tracked = True
        try:
            plan = await self._make_plan()
            self._plan = plan
            self.cache = await look_up(services, plan, self._principal, self._cache_header)
            if self.cache.hit is not None:
                return await self._enter_replay(plan, self.cache.hit)
            await self._wait_for_price(plan)
            self._admitted = await admit(services, plan, self._principal, self._hold_info(plan))
            self._keeper = HoldKeeper(services.ledger, self._admitted.admission.hold, self._progress,
                                      checkpoint_interval(services.config.ledger.reservation_ttl_s))
            self._keeper.start()
            if services.metrics is not None:
                self._in_flight = services.metrics.in_flight()
                self._in_flight.__enter__()
        except BaseException:
            self._untrack()
            self._end_probe(known=False)
            raise
        try:
            self._t_upstream = (time.perf_counter(), None)
            connection = await connect(services, plan, self.request_id)
        except BaseException as exc:
            if isinstance(exc, HermesError):
                self._error = exc
            await self._finish(_status_for(type(exc)))
            raise
        self._answer = Answer(plan, connection, services.counter, self._meter, clock=time.perf_counter)
        upstream = connection.upstream
        self.info = CallInfo(
            request_id=self.request_id, model=plan.model.alias,
            response_model=plan.model.alias + (SIMULATED_SUFFIX if upstream.simulated else ""),
            route=connection.route, reasoning=plan.decision, prompt_tokens=plan.prompt_tokens,
            max_tokens=plan.max_tokens, max_tokens_source=plan.max_tokens_source,
            reserved_usd=self._admitted.admission.hold.amount_usd,
            admission=self._admitted.admission, simulated=upstream.simulated, context_window=plan.model.context_window)
        return self

    async def _enter_replay(self, plan: Plan, hit: StoredAnswer) -> ChatCall:
        """A cache hit: admitted for its charge (rate limits and budget as for any request), then replayed; no
        upstream is called. Its hold carries the charge as its progress, so a replay cut short still bills it."""
        services = self._services
        self._hit_charge = charge_for(services, hit)
        charge = self._hit_charge or Decimal(0)
        progress = Progress(hit.usage.prompt_tokens, hit.usage.completion_tokens, hit.usage.reasoning_tokens,
                            self._hit_charge)
        self._admitted = await admit(services, dataclasses.replace(plan, reserve_usd=charge), self._principal,
                                     self._hold_info(plan, route=hit.route), progress=progress, price_keys=())
        self._keeper = HoldKeeper(services.ledger, self._admitted.admission.hold, self._progress,
                                  checkpoint_interval(services.config.ledger.reservation_ttl_s))
        self._keeper.start()
        route = next((r for r in plan.routes if r.label == hit.route), plan.routes[0])
        upstream = services.upstreams.get(route.upstream)
        simulated = bool(upstream is not None and upstream.simulated)
        self.info = CallInfo(
            request_id=self.request_id, model=plan.model.alias,
            response_model=plan.model.alias + (SIMULATED_SUFFIX if simulated else ""),
            route=route, reasoning=plan.decision, prompt_tokens=hit.usage.prompt_tokens,
            max_tokens=plan.max_tokens, max_tokens_source=plan.max_tokens_source,
            reserved_usd=self._admitted.admission.hold.amount_usd, admission=self._admitted.admission,
            simulated=simulated, context_window=plan.model.context_window)
        return self

    async def _wait_for_price(self, plan: Plan) -> None:
        """On a route whose upstream reports its own cost and whose real price is not known yet, wait for the request
        finding it out, or be that request (see pipeline/probe.py)."""
        services, primary = self._services, plan.routes[0]
        if not services.upstreams[primary.upstream].dialect.reports_cost or services.prices.get(primary) is None:
            return
        key = price_key(plan, primary)
        if not services.probes.is_known(key) and await services.probes.enter(key, services.ledger):
            self._probe_key = key

    def _end_probe(self, *, known: bool) -> None:
        if self._probe_key is not None:
            self._services.probes.done(self._probe_key, known=known)
            self._probe_key = None

    def _hold_info(self, plan: Plan, *, route: str | None = None) -> HoldInfo:
        key = self._principal.key
        return HoldInfo(request_id=self.request_id, key_name=key.name if key else None, model=plan.model.alias,
                        route=route or plan.routes[0].label, reasoning=plan.decision.enabled,
                        started_at=self.started_at)

    def _progress(self) -> Progress:
        """The usage so far and its cost, for the hold's checkpoint: at the configured price times the factor the
        route is known to bill above it (the rate its reservation was made at)."""
        assert self._plan is not None and self._admitted is not None
        hit = self.cache.hit
        if hit is not None:
            return Progress(hit.usage.prompt_tokens, hit.usage.completion_tokens, hit.usage.reasoning_tokens,
                            self._hit_charge)
        usage = self._meter.running(self._services.counter, self._plan.max_tokens)
        route = self._answer.connection.route if self._answer else self._plan.routes[0]
        cost = cost_of(usage, self._services.prices.get(route))
        if cost is not None:
            cost *= self._admitted.admission.price_factor
        return Progress(usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens, cost)

    async def _make_plan(self) -> Plan:
        services = self._services
        dialects = {name: upstream.dialect for name, upstream in services.upstreams.items()}
        args = (services.config, dialects, services.counter, services.prices, self._body, self._principal.team,
                self._reasoning_header)
        if prompt_size(self._body) > BIG_PROMPT_CHARS:
            # counting a long prompt takes milliseconds of CPU: keep the event loop serving other streams meanwhile
            return await asyncio.to_thread(make_plan, *args)
        return make_plan(*args)

    # --- the answer -----------------------------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Piece]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[Piece]:
        hit = self.cache.hit
        if hit is not None:
            paced = self._services.config.cache.replay == "paced"
            async for piece in hit.replay(paced=paced, sleep=self._services.sleep):
                if self._first_replayed_at is None:
                    self._first_replayed_at = time.perf_counter()
                yield piece
            return
        answer = self._answer
        assert answer is not None
        keep = self.cache.pieces if self.cache.keeps_answer else None
        try:
            async for piece in answer.pieces():
                if keep is not None and not piece.keepalive:
                    keep.append(piece)
                yield piece
        finally:
            self._error = self._error or answer.error
            if self._t_upstream is not None:
                self._t_upstream = (self._t_upstream[0], time.perf_counter())

    @property
    def plan(self) -> Plan | None:
        """What the request was planned as (None before it was)."""
        return self._plan

    @property
    def checks(self) -> AnswerChecks | None:
        """What the finished answer did not honour (tool_choice, a JSON format): known once the pieces are done."""
        return self._answer.checks if self._answer else None

    # --- leaving: outcome, settle ---------------------------------------------------------------------------------

    def fail(self, error: HermesError) -> None:
        """The caller could not finish relaying the answer (a bug after the response started): the call settles as
        failed, billed for what the upstream produced."""
        self._error = error

    def compute_outcome(self, status: str) -> Outcome:
        assert self._plan is not None
        hit = self.cache.hit
        if hit is not None:  # billed its charge, however far the replay got
            self.outcome = Outcome(usage=hit.usage, cost_usd=self._hit_charge, finish_reason=hit.finish_reason,
                                   status=CACHED if status == "ok" else status, error=self._error)
            return self.outcome
        usage = self._meter.total(self._services.counter, self._plan.max_tokens)
        route = self._answer.connection.route if self._answer else None
        price = self._services.prices.get(route) if route else None
        cost = cost_of(usage, price) if self._answer is not None else Decimal(0)
        finish = self._answer.finish_reason if self._answer else None
        self.outcome = Outcome(usage=usage, cost_usd=cost, finish_reason=finish, status=status, error=self._error)
        return self.outcome

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc_type is not None:
            status = _status_for(exc_type)
        else:
            status = "ok" if self._error is None else _status_for(type(self._error))
        await self._finish(status)

    def _untrack(self) -> None:
        if self._tracked:
            self._tracked = False
            self._services.tracker.ended()

    async def _finish(self, status: str) -> None:
        if self._settled:
            return
        self._settled = True
        self._t_finished = time.perf_counter()
        if self._t_upstream is not None and self._t_upstream[1] is None:
            self._t_upstream = (self._t_upstream[0], self._t_finished)
        self._untrack()
        if self._keeper is not None:
            self._keeper.stop()
        if self._in_flight is not None:
            self._in_flight.__exit__(None, None, None)
        if self.outcome is None or self.outcome.status != status:
            self.compute_outcome(status)
        task = asyncio.ensure_future(self._settle())
        self._services.tracker.add_settle(task)
        # shielded: a client that goes away cancels the handler, never the bill
        await asyncio.shield(task)

    async def _settle(self) -> None:
        assert self.outcome is not None and self._admitted is not None and self._plan is not None
        principal, plan, outcome = self._principal, self._plan, self.outcome
        route = self._answer.connection.route if self._answer else None
        hit = self.cache.hit
        admission = self._admitted.admission
        revealed = False
        try:
            if route is not None:
                revealed = await self._learn_price(route, outcome)
        finally:
            self._end_probe(known=self._price_known)
        record = RequestRecord(
            request_id=self.request_id, started_at=self.started_at, team=principal.team.name,
            key_id=principal.key.id if principal.key else None,
            key_name=principal.key.name if principal.key else None,
            model=plan.model.alias, route=hit.route if hit else (route.label if route else ""),
            reasoning=plan.decision.enabled,
            prompt_tokens=outcome.usage.prompt_tokens, completion_tokens=outcome.usage.completion_tokens,
            reasoning_tokens=outcome.usage.reasoning_tokens, cost_usd=outcome.cost_usd,
            estimated=outcome.usage.estimated, status=outcome.status,
            latency_ms=(time.perf_counter() - self._t0) * 1000, ttft_ms=self.ttft_ms,
            learned_price=revealed or admission.price_factor > 1)
        ttft = self.ttft_ms
        timings = Timings(total_s=self.total_ms / 1000, overhead_s=self.overhead_ms / 1000,
                          ttft_s=None if ttft is None else ttft / 1000)
        extra_log: dict[str, Any] = {}
        if self.client_request_id and self.client_request_id != self.request_id:
            extra_log["client_request_id"] = self.client_request_id
        if self._services.config.server.log_prompts:
            extra_log["messages"] = plan.request.messages
            extra_log["answer"] = self._answer.shaper.content_text if self._answer else ""
        if hit is not None:
            extra_log["cache"] = "hit"
        await settle(self._services, principal, admission, record, outcome, timings,
                     extra_log=extra_log)
        if hit is not None and outcome.status == CACHED:
            await record_saving(self._services, principal.team.name, self.request_id, hit, outcome.cost_usd)
        checks = self.checks
        structured_ok = checks is None or checks.structured_error is None
        if route is not None and worth_keeping(self.cache, outcome, route.label, plan, structured_ok):
            answer = stored_answer(self.cache, outcome, route.label, self._t_upstream[0] if self._t_upstream
                                   else self._t0)
            spawn(self._services.tracker, keep(self._services, principal.team.name, self.cache, answer),
                  "response cache")

    async def _learn_price(self, route: Route, outcome: Outcome) -> bool:
        """When the upstream reported a cost above the route's configured price, the factor is learned in the
        ledger, so that every replica reserves at the observed rate from now on; a request finding out a route's
        price records it even when it is as configured. True when this request revealed a higher price."""
        assert self._plan is not None and self._admitted is not None
        usage, price = outcome.usage, self._services.prices.get(route)
        if usage.upstream_cost_usd is None or price is None:
            return False
        configured = cost_of(dataclasses.replace(usage, upstream_cost_usd=None), price)
        if not configured:
            return False
        factor = usage.upstream_cost_usd / configured
        rises = factor > self._admitted.admission.price_factor * PRICE_RISE_THRESHOLD
        key = price_key(self._plan, route)
        if not rises and key != self._probe_key:
            return False
        try:
            learned = await self._services.ledger.learn_price(key, factor)
        except Exception:
            log.exception("request %s: could not record the learned price of %s", self.request_id, key)
            return rises
        self._price_known = True
        if not rises:
            return False
        log.warning("route %s billed %s times its configured price; reservations now use that rate",
                    key, f"{factor:.3f}")
        if self._services.metrics is not None:
            self._services.metrics.price_learned(key, learned)
        team = self._principal.team
        if self._services.alerts is not None and team.alerts:
            spawn(self._services.tracker, self._services.alerts.price_rise(team, key, learned), "price rise")
        return True

    @property
    def cache_saved_usd(self) -> Decimal | None:
        """On a cache hit, what it saves: the answer's first cost less this request's charge (None: unknown)."""
        hit = self.cache.hit
        if hit is None or hit.cost_usd is None or self._hit_charge is None:
            return None
        return max(Decimal(0), hit.cost_usd - self._hit_charge)

    def remaining_budget_usd(self) -> Decimal | None:
        """The tightest window's remaining budget: after the reservation, or once the outcome is known, after this
        request's actual cost replaced its reservation."""
        admission = self._admitted.admission if self._admitted else None
        if admission is None or admission.remaining_usd is None:
            return None
        remaining = admission.remaining_usd
        if self.outcome is not None:
            remaining += admission.hold.amount_usd - (self.outcome.cost_usd or Decimal(0))
        return remaining


def _status_for(exc_type: type[BaseException]) -> str:
    if issubclass(exc_type, UpstreamError):
        return "upstream_error"
    if issubclass(exc_type, (asyncio.CancelledError, ConnectionError)):
        return "cancelled"
    return "error"
