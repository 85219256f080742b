"""Prometheus metrics for the proxy: one :class:`Metrics` per application, each with its own ``CollectorRegistry``.

Every name starts with ``hermes_``. Label values come from configuration (teams, model aliases, route labels, upstream
names) or from small fixed sets (status, refusal reason, error code, token kind, budget window); as a guard against a
caller passing something client-controlled, each label keeps at most ``max_label_values`` distinct values and maps
any further one to ``"other"``, so a misbehaving client can never blow up the series count.

The hot path (:meth:`Metrics.request_finished`) caches the labelled children of each (team, model, route, status), so a
call is a handful of counter increments and three histogram observations (see ``bench/bench_metrics.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 450.0, 600.0)

OTHER = "other"


@dataclass(frozen=True, slots=True)
class _Finished:
    """The labelled children one (team, model, route, status) touches, looked up once."""

    requests: Any
    overhead: Any
    ttft: Any
    duration: Any
    prompt: Any
    completion: Any
    reasoning: Any
    cost: Any
    unknown_cost: Any


class _Bounded:
    """Caps the distinct values of one label; further values become ``"other"``."""

    __slots__ = ("_limit", "_seen")

    def __init__(self, limit: int, preset: Iterable[str] = ()) -> None:
        self._limit = limit
        self._seen: set[str] = set(preset)

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(value)
        return value


class Metrics:
    def __init__(self, *, max_label_values: int = 200) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._requests = Counter("hermes_requests", "Chat completion requests that finished, by outcome.",
                                 ["team", "model", "route", "status"], registry=r)
        self._overhead = Histogram("hermes_request_overhead_seconds",
                                   "Time the proxy itself spent before the upstream was called.",
                                   ["model", "route"], buckets=OVERHEAD_BUCKETS, registry=r)
        self._ttft = Histogram("hermes_time_to_first_token_seconds",
                               "Time from the request's arrival to the first token sent to the client.",
                               ["model", "route"], buckets=TTFT_BUCKETS, registry=r)
        self._duration = Histogram("hermes_request_duration_seconds", "Total time of a chat completion request.",
                                   ["model", "route"], buckets=DURATION_BUCKETS, registry=r)
        self._tokens = Counter("hermes_tokens", "Tokens billed (reasoning tokens are part of completion tokens).",
                               ["team", "model", "kind"], registry=r)
        self._cost = Counter("hermes_cost_usd", "Cost of finished requests in USD (requests of known cost only).",
                             ["team", "model"], registry=r)
        self._unknown_cost = Counter("hermes_requests_unknown_cost", "Finished requests whose cost is unknown.",
                                     ["team", "model"], registry=r)
        # multiprocess_mode: how the gauges of several workers (serve --workers) add up; ignored in one process
        self._budget = Gauge("hermes_budget_remaining_usd", "Remaining budget of a team's window in USD.",
                             ["team", "window"], registry=r, multiprocess_mode="mostrecent")
        self._in_flight = Gauge("hermes_in_flight_requests", "Requests being served right now.", registry=r,
                                multiprocess_mode="livesum")
        self._settles_waiting = Gauge("hermes_settles_waiting",
                                      "Settles the ledger could not write, kept in the outbox until it can.",
                                      registry=r, multiprocess_mode="livemax")
        self._price_factor = Gauge("hermes_route_price_factor",
                                   "Cost an upstream reported over the route's configured price (learned; 1 = as "
                                   "configured), by model alias and route.", ["route"], registry=r,
                                   multiprocess_mode="max")
        self._price_rises = Counter("hermes_route_price_rises", "Times a request revealed a price above the one "
                                    "reservations used.", ["route"], registry=r)
        self._upstream_errors = Counter("hermes_upstream_errors", "Errors returned by upstreams, by error code.",
                                        ["upstream", "code"], registry=r)
        self._upstream_retries = Counter("hermes_upstream_retries", "Retries of an upstream call.", ["upstream"],
                                         registry=r)
        self._failovers = Counter("hermes_failovers", "Fail-overs from one upstream to the next.",
                                  ["from_upstream", "to_upstream"], registry=r)
        self._refused = Counter("hermes_refused_requests", "Requests refused before reaching an upstream.",
                                ["team", "model", "reason"], registry=r)
        self._alerts = Counter("hermes_budget_alerts", "Budget-alert webhook posts, by team and result (sent: "
                               "accepted; failed: an attempt that will be retried).", ["team", "result"], registry=r)
        self._cache_lookups = Counter("hermes_cache_lookups", "Response-cache lookups, by team and result (hit, miss, "
                                      "error: the store did not answer and the request went upstream).",
                                      ["team", "result"], registry=r)
        self._cache_stored = Counter("hermes_cache_stored_bytes", "Bytes of answers written to the response cache.",
                                     ["team"], registry=r)
        self._cache_saved = Counter("hermes_cache_saved_usd", "What cache hits saved, in USD (first cost less the "
                                    "hit's charge).", ["team"], registry=r)
        limit = max_label_values
        self._team = _Bounded(limit)
        self._model = _Bounded(limit)
        self._route = _Bounded(limit)
        self._status = _Bounded(limit)
        self._reason = _Bounded(limit)
        self._upstream = _Bounded(limit)
        self._code = _Bounded(limit)
        self._window = _Bounded(limit)
        self._finished: dict[tuple[str, str, str, str], _Finished] = {}

    # --- requests ---------------------------------------------------------------------------------------------

    def request_finished(
        self,
        *,
        team: str,
        model: str,
        route: str,
        status: str,
        prompt_tokens: int,
        completion_tokens: int,
        reasoning_tokens: int,
        cost_usd: Decimal | None,
        overhead_s: float | None,
        ttft_s: float | None,
        total_s: float,
    ) -> None:
        key = (self._team(team), self._model(model), self._route(route), self._status(status))
        children = self._finished.get(key)
        if children is None:
            children = self._children(key)
        children.requests.inc()
        if overhead_s is not None:
            children.overhead.observe(overhead_s)
        if ttft_s is not None:
            children.ttft.observe(ttft_s)
        children.duration.observe(total_s)
        if prompt_tokens:
            children.prompt.inc(prompt_tokens)
        if completion_tokens:
            children.completion.inc(completion_tokens)
        if reasoning_tokens:
            children.reasoning.inc(reasoning_tokens)
        if cost_usd is None:
            children.unknown_cost.inc()
        elif cost_usd:
            children.cost.inc(float(cost_usd))

    def _children(self, key: tuple[str, str, str, str]) -> _Finished:
        team, model, route, status = key
        children = _Finished(
            requests=self._requests.labels(team, model, route, status),
            overhead=self._overhead.labels(model, route),
            ttft=self._ttft.labels(model, route),
            duration=self._duration.labels(model, route),
            prompt=self._tokens.labels(team, model, "prompt"),
            completion=self._tokens.labels(team, model, "completion"),
            reasoning=self._tokens.labels(team, model, "reasoning"),
            cost=self._cost.labels(team, model),
            unknown_cost=self._unknown_cost.labels(team, model),
        )
        self._finished[key] = children
        return children

    def request_refused(self, *, team: str, model: str, reason: str) -> None:
        """A request refused before any upstream call: ``reason`` is budget, rate_limit, auth, invalid, ..."""
        self._refused.labels(self._team(team), self._model(model), self._reason(reason)).inc()

    def in_flight(self) -> AbstractContextManager[Any]:
        """``with metrics.in_flight(): ...`` counts the request in ``hermes_in_flight_requests`` while it runs."""
        return self._in_flight.track_inprogress()

    # --- upstreams --------------------------------------------------------------------------------------------

    def upstream_error(self, upstream: str, code: str) -> None:
        self._upstream_errors.labels(self._upstream(upstream), self._code(code)).inc()

    def upstream_retry(self, upstream: str) -> None:
        self._upstream_retries.labels(self._upstream(upstream)).inc()

    def failover(self, from_upstream: str, to_upstream: str) -> None:
        self._failovers.labels(self._upstream(from_upstream), self._upstream(to_upstream)).inc()

    # --- budgets ----------------------------------------------------------------------------------------------

    def set_budget_remaining(self, team: str, window: str, remaining_usd: Decimal) -> None:
        self._budget.labels(self._team(team), self._window(window)).set(float(remaining_usd))

    # --- ledger -----------------------------------------------------------------------------------------------

    def set_settles_waiting(self, count: int) -> None:
        """How many settles wait in the outbox for the ledger to come back."""
        self._settles_waiting.set(count)

    def price_learned(self, route: str, factor: Decimal) -> None:
        """A route billed above its configured price: reservations now use ``factor`` times it."""
        label = self._route(route)
        self._price_factor.labels(label).set(float(factor))
        self._price_rises.labels(label).inc()

    def alert_delivered(self, *, team: str, ok: bool) -> None:
        """One budget-alert webhook post: accepted (``sent``) or failed (retried later)."""
        self._alerts.labels(self._team(team), "sent" if ok else "failed").inc()

    # --- response cache ---------------------------------------------------------------------------------------

    def cache_lookup(self, *, team: str, result: str) -> None:
        self._cache_lookups.labels(self._team(team), result).inc()

    def cache_stored(self, *, team: str, size_bytes: int) -> None:
        self._cache_stored.labels(self._team(team)).inc(size_bytes)

    def cache_saved(self, *, team: str, saved_usd: Decimal) -> None:
        self._cache_saved.labels(self._team(team)).inc(float(saved_usd))

    # --- exposition -------------------------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The text exposition of every metric, and its content type (for ``GET /metrics``): this process's, or with
        ``serve --workers`` (``PROMETHEUS_MULTIPROC_DIR`` set by the parent) every worker's, added up."""
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not shared:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=shared)
        return generate_latest(registry), CONTENT_TYPE_LATEST
