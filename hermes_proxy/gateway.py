"""The request pipeline, in one place, shared by the HTTP server and the terminal chat.

    policy -> reasoning decision -> exact prompt tokens -> context check -> ledger.reserve(worst case)
    -> upstream (retry, then fail over, only before the first chunk) -> <think> split + output shaping
    -> usage (upstream's, else counted here and marked estimated) -> cost -> ledger.settle (always, shielded)

Use it as ``async with gateway.chat(body, principal) as call: async for piece in call: ...``; ``call.info`` is known
on entry (before the first byte goes out) and ``call.outcome`` once the pieces are exhausted.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hermes_proxy.chat_request import ChatRequest, parse_chat_request
from hermes_proxy.config import Config, ModelConfig, Route
from hermes_proxy.errors import (
    ContextLengthExceeded,
    HermesError,
    ModelNotFound,
    ModelUnavailable,
    PermissionDenied,
)
from hermes_proxy.ledger.base import Admission, KeyRecord, Ledger
from hermes_proxy.metrics import Metrics
from hermes_proxy.pricing import Price, worst_case_cost
from hermes_proxy.ratelimit import RateLimiter
from hermes_proxy.reasoning import (
    DEEP_THINKING_PROMPT,
    ReasoningDecision,
    apply_reasoning,
    clean_history,
    resolve_reasoning,
    split_model_suffix,
)
from hermes_proxy.tokens import TokenCounter
from hermes_proxy.upstreams.base import Upstream
from hermes_proxy.usage import Usage
from policies.models import cap_max_tokens, check_model
from policies.types import TeamPolicy

if TYPE_CHECKING:
    from hermes_proxy.call import ChatCall



@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a team (and the key it used, if any)."""

    team: TeamPolicy
    key: KeyRecord | None = None
    is_admin: bool = False


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What is known before the first byte: for response headers and the chat's status line."""

    request_id: str
    model: str
    response_model: str
    route: Route
    reasoning: ReasoningDecision
    prompt_tokens: int
    max_tokens: int
    max_tokens_source: str
    reserved_usd: Decimal
    admission: Admission
    simulated: bool
    context_window: int


@dataclass(frozen=True, slots=True)
class Outcome:
    usage: Usage
    cost_usd: Decimal | None
    finish_reason: str | None
    status: str
    error: HermesError | None = None


@dataclass(slots=True)
class Piece:
    """One step of the answer: delta fields for the client (already shaped), tool-call fragments, a finish reason."""

    delta: dict[str, Any] = field(default_factory=dict)
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What admission decided: the parsed request, model, reasoning, token counts, the reservation."""

    request: ChatRequest
    model: ModelConfig
    decision: ReasoningDecision
    prompt_tokens: int
    max_tokens: int
    max_tokens_source: str
    reserve_usd: Decimal
    #: the history as the primary route's kind expects it (reused for that route's payload)
    primary_kind: str = ""
    primary_messages: tuple[dict[str, Any], ...] = ()
    #: the routes to try, in order (those whose upstream has no API key are left out)
    routes: tuple[Route, ...] = ()


class Gateway:
    def __init__(
        self,
        config: Config,
        *,
        upstreams: Mapping[str, Upstream],
        ledger: Ledger,
        counter: TokenCounter,
        prices: Mapping[str, Price | None],
        rate_limiter: RateLimiter | None = None,
        metrics: Metrics | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.upstreams = upstreams
        self.ledger = ledger
        self.counter = counter
        self.prices = prices
        self.rate_limiter = rate_limiter
        self.metrics = metrics
        self._sleep = sleep
        self._settles: set[asyncio.Task[None]] = set()
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # --- what a team may use ----------------------------------------------------------------------------------

    def models_for(self, team: TeamPolicy) -> list[ModelConfig]:
        return [m for m in self.config.models if team.models is None or m.alias in team.models]

    def is_simulated(self, model: ModelConfig) -> bool:
        return all(getattr(self.upstreams.get(r.upstream), "simulated", False) for r in model.routes)

    @property
    def active_calls(self) -> int:
        return self._active

    def _call_started(self) -> None:
        self._active += 1
        self._idle.clear()

    def _call_ended(self) -> None:
        self._active -= 1
        if self._active == 0:
            self._idle.set()

    async def settled(self) -> None:
        """Until every call that has started is finished and recorded in the ledger."""
        await self.wait_idle()
        await self.drain()

    async def wait_idle(self) -> None:
        """Until no call is running on this gateway (a retired gateway after a config reload)."""
        await self._idle.wait()

    def chat(self, body: Any, principal: Principal, *, reasoning_header: str | None = None,
             request_id: str | None = None) -> ChatCall:
        from hermes_proxy.call import ChatCall

        return ChatCall(self, body, principal, reasoning_header, request_id or f"req_{os.urandom(12).hex()}")

    async def drain(self) -> None:
        """Wait for settles still running (graceful shutdown)."""
        while self._settles:
            await asyncio.gather(*list(self._settles), return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        for upstream in self.upstreams.values():
            await upstream.aclose()

    # --- planning (pure but for token counting) ----------------------------------------------------------------

    def plan(self, body: Any, principal: Principal, reasoning_header: str | None) -> Plan:
        request = parse_chat_request(body)
        alias, suffix = split_model_suffix(request.model)
        model = self.config.model(alias)
        if model is None:
            known = ", ".join(m.alias for m in self.models_for(principal.team))
            raise ModelNotFound(f"The model '{request.model}' does not exist (available: {known})", param="model")
        team = principal.team
        allowed = check_model(team, alias)
        if not allowed.allowed:
            raise PermissionDenied(allowed.explanation, param="model")
        routes = self.config.usable_routes(model)
        if not routes:
            raise ModelUnavailable(unavailable_message(self.config, model), param="model")
        decision = resolve_reasoning(request.body, reasoning_header, suffix, team, model.default_reasoning)
        primary_kind = self.config.upstream(routes[0].upstream).kind
        messages = clean_history(request.messages, primary_kind, decision.enabled)
        injected = DEEP_THINKING_PROMPT if decision.enabled else None
        # with vLLM the template itself rewrites earlier assistant turns when thinking is on
        prompt_tokens = self.counter.count_prompt(messages, request.tools, system_prompt=injected,
                                                  thinking=decision.enabled and primary_kind == "vllm")
        window = model.context_window
        budget = cap_max_tokens(team, request.max_tokens, prompt_tokens=prompt_tokens, context_window=window)
        if not budget.fits:
            asked = prompt_tokens + budget.max_tokens
            raise ContextLengthExceeded(
                f"This model's maximum context length is {window} tokens. However, you requested {asked} tokens "
                f"({prompt_tokens} in the messages, {budget.max_tokens} in the completion). Please reduce the length "
                "of the messages or completion.", param="messages")
        max_tokens, source = budget.max_tokens, budget.source
        reserve = max(
            (worst_case_cost(prompt_tokens, max_tokens, self.prices.get(route.label)) for route in routes),
            default=Decimal(0),
        )
        return Plan(request, model, decision, prompt_tokens, max_tokens, source, reserve, primary_kind,
                    tuple(messages), routes)

    def payload_for(self, plan: Plan, route: Route, upstream: Upstream) -> dict[str, Any]:
        body = plan.request.body
        payload = {k: v for k, v in body.items() if k not in ("model", "stream", "stream_options", "n",
                                                                "max_completion_tokens", "max_tokens")}
        kind = upstream.config.kind
        payload["messages"] = (list(plan.primary_messages) if kind == plan.primary_kind
                               else clean_history(plan.request.messages, kind, plan.decision.enabled))
        payload["model"] = route.model
        payload["max_tokens"] = plan.max_tokens
        sampling = self.config.sampling
        if sampling.temperature is not None:
            payload.setdefault("temperature", sampling.temperature)
        if sampling.top_p is not None:
            payload.setdefault("top_p", sampling.top_p)
        if sampling.top_k is not None and upstream.config.accepts_top_k:
            payload.setdefault("top_k", sampling.top_k)
        return apply_reasoning(payload, kind, plan.decision)


def unavailable_message(config: Config, model: ModelConfig) -> str:
    """Why a model has no usable route and what to do about it: the message of its 503 model_unavailable."""
    envs = list(dict.fromkeys(f"${u.api_key_env}" for r in model.routes
                              for u in (config.upstream(r.upstream),) if u.missing_key and u.api_key_env))
    names = ", ".join(dict.fromkeys(r.upstream for r in model.routes))
    text = (f"model '{model.alias}' is not available: the API key of every upstream it routes to ({names}) is not "
            f"set; set {' or '.join(envs) or 'their api_key_env'} in the proxy's environment and restart it")
    demo = [m.alias for m in config.models if m.routes and config.upstream(m.routes[0].upstream).kind == "demo"
            and config.usable_routes(m)]
    if demo:
        text += f" (model '{demo[0]}' is the simulated Hermes and needs no key)"
    return text
