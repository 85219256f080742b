"""Stage 2, plan (pure but for token counting): the model and its routes, the team's policy, the reasoning decision,
exact prompt tokens, ``max_tokens`` and the worst-case reservation. Also the payload one route is sent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hermes_proxy.config import Config, ModelConfig, Route
from hermes_proxy.errors import (
    ContextLengthExceeded,
    ModelNotFound,
    ModelUnavailable,
    PermissionDenied,
    PromptTooLong,
)
from hermes_proxy.pipeline.parse import CONSUMED_FIELDS, ChatRequest, parse_chat_request
from hermes_proxy.pricing import Price, worst_case_cost
from hermes_proxy.reasoning import DEEP_THINKING_PROMPT, ReasoningDecision, resolve_reasoning, split_model_suffix
from hermes_proxy.tokens import TokenCounter
from hermes_proxy.upstreams.dialect import Dialect
from policies.models import cap_max_tokens, check_model, check_prompt_tokens
from policies.types import TeamPolicy

#: a prompt this large (characters) is counted off the event loop: counting costs about 1 ms per 10k characters
BIG_PROMPT_CHARS = 16_000


@dataclass(frozen=True, slots=True)
class Plan:
    """What the request will be: the parsed request, model, reasoning, token counts, the reservation, the routes."""

    request: ChatRequest
    model: ModelConfig
    decision: ReasoningDecision
    prompt_tokens: int
    max_tokens: int
    max_tokens_source: str
    reserve_usd: Decimal
    #: the routes to try, in order (those whose upstream has no API key are left out)
    routes: tuple[Route, ...]
    #: the history as the primary route's dialect sends it (reused for that route's payload)
    primary_messages: tuple[Any, ...]
    #: the prompt is over the team's max_prompt_tokens and the team only warns (x-hermes-prompt-warning)
    prompt_warning: str | None = None


def make_plan(config: Config, dialects: Mapping[str, Dialect], counter: TokenCounter,
              prices: Mapping[Route, Price | None], body: Any, team: TeamPolicy, reasoning_header: str | None) -> Plan:
    request = parse_chat_request(body)
    alias, suffix = split_model_suffix(request.model)
    model = config.model(alias)
    if model is None:
        known = ", ".join(m.alias for m in config.models if team.models is None or m.alias in team.models)
        raise ModelNotFound(f"The model '{request.model}' does not exist (available: {known})", param="model")
    allowed = check_model(team, alias)
    if not allowed.allowed:
        raise PermissionDenied(allowed.explanation, param="model")
    routes = config.usable_routes(model)
    if not routes:
        raise ModelUnavailable(unavailable_message(config, model), param="model")
    decision = resolve_reasoning(request.body, reasoning_header, suffix, team, model.default_reasoning)
    primary = dialects[routes[0].upstream]
    messages = primary.history(request.messages, decision.enabled)
    prompt_tokens = counter.count_prompt(messages, request.tools,
                                         system_prompt=DEEP_THINKING_PROMPT if decision.enabled else None,
                                         thinking=decision.enabled and primary.template_rewrites_history)
    prompt_limit = check_prompt_tokens(team, prompt_tokens)
    if not prompt_limit.allowed:
        raise PromptTooLong(prompt_limit.explanation, param="messages")
    window = model.context_window
    budget = cap_max_tokens(team, request.max_tokens, prompt_tokens=prompt_tokens, context_window=window)
    if not budget.fits:
        asked = prompt_tokens + budget.max_tokens
        raise ContextLengthExceeded(
            f"This model's maximum context length is {window} tokens. However, you requested {asked} tokens "
            f"({prompt_tokens} in the messages, {budget.max_tokens} in the completion). Please reduce the length "
            "of the messages or completion.", param="messages")
    reserve = max((worst_case(prompt_tokens, budget.max_tokens, decision, route, dialects[route.upstream],
                              prices.get(route)) for route in routes), default=Decimal(0))
    return Plan(request, model, decision, prompt_tokens, budget.max_tokens, budget.source, reserve, routes,
                tuple(messages), prompt_warning=prompt_limit.explanation or None)


#: tokens the follow-up request of a reasoning budget adds to the prompt besides the reasoning itself (the forced-answer
#: note or the continued assistant message's tags)
FOLLOW_UP_EXTRA_TOKENS = 96


def worst_case(prompt_tokens: int, max_tokens: int, decision: ReasoningDecision, route: Route, dialect: Dialect,
               price: Price | None) -> Decimal:
    """The most this request can cost on ``route``: the prompt and ``max_tokens`` generated, plus, when the proxy
    enforces a reasoning budget there, the follow-up call's prompt (the prompt again, with the reasoning so far). The
    completion over both calls never exceeds ``max_tokens``."""
    cost = worst_case_cost(prompt_tokens, max_tokens, price)
    cap = decision.max_reasoning_tokens
    if decision.enabled and cap is not None and not dialect.enforces_reasoning_budget(route):
        cost += worst_case_cost(prompt_tokens + min(cap, max_tokens) + FOLLOW_UP_EXTRA_TOKENS, 0, price)
    return cost


def upstream_payload(config: Config, plan: Plan, route: Route, dialect: Dialect) -> dict[str, Any]:
    """The body for one route: the client's fields less those the proxy consumes, the route's model, the planned
    ``max_tokens``, Hermes' recommended sampling where the client set none, and reasoning, tools and structured output
    the dialect's way."""
    payload = {k: v for k, v in plan.request.body.items() if k not in CONSUMED_FIELDS}
    primary = route == plan.routes[0]
    payload["messages"] = (list(plan.primary_messages) if primary
                           else dialect.history(plan.request.messages, plan.decision.enabled))
    payload["model"] = route.model
    payload["max_tokens"] = plan.max_tokens
    sampling = config.sampling
    if sampling.temperature is not None:
        payload.setdefault("temperature", sampling.temperature)
    if sampling.top_p is not None:
        payload.setdefault("top_p", sampling.top_p)
    if sampling.top_k is not None:
        payload.setdefault("top_k", sampling.top_k)
    return dialect.with_tools(dialect.with_reasoning(payload, plan.decision, route))


def prompt_size(body: Any) -> int:
    """A cheap upper bound of the characters to count: message text (content parts included) and tools."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return 0
    size = 0
    for message in body["messages"]:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            size += len(content)
        elif isinstance(content, list):
            size += sum(len(part.get("text") or "") for part in content
                        if isinstance(part, dict) and isinstance(part.get("text"), str))
    tools = body.get("tools")
    if isinstance(tools, list):
        size += 200 * len(tools)
    return size


def unavailable_message(config: Config, model: ModelConfig) -> str:
    """Why a model has no usable route and what to do about it: the message of its 503 model_unavailable."""
    envs = list(dict.fromkeys(f"${u.api_key_env}" for r in model.routes
                              for u in (config.upstream(r.upstream),) if u.missing_key and u.api_key_env))
    names = ", ".join(dict.fromkeys(r.upstream for r in model.routes))
    text = (f"model '{model.alias}' is not available: the API key of every upstream it routes to ({names}) is not "
            f"set; set {' or '.join(envs) or 'their api_key_env'} in the proxy's environment and restart it")
    simulated = [m.alias for m in config.models if m.routes and config.usable_routes(m)
                 and all(config.upstream(r.upstream).simulated for r in m.routes)]
    if simulated:
        text += f" (model '{simulated[0]}' is the simulated Hermes and needs no key)"
    return text
