"""OpenRouter: reasoning via ``reasoning.enabled``, returned in ``delta.reasoning``; ``usage.cost`` in USD.

``reasoning.max_tokens`` is documented only for some model families; for Hermes 4 the documented control is
``reasoning.enabled``, so the proxy enforces a reasoning budget itself unless the route says its model honours
``max_tokens`` (``honours_reasoning_budget``). ``exclude`` is never sent: the proxy hides reasoning itself, so it can
still count and bill it.

Usage carries ``cost`` in USD. For a BYOK request (``is_byok``: the provider is paid with the team's own provider
key) that ``cost`` is OpenRouter's fee only; the provider's charge is ``cost_details.upstream_inference_cost``, and
the request costs both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from hermes_proxy.config import Route
from hermes_proxy.money import usd_from_json
from hermes_proxy.reasoning import DEEP_THINKING_PROMPT, ReasoningDecision
from hermes_proxy.upstreams.dialect import Dialect
from hermes_proxy.usage import Usage

APP_URL = "https://github.com/hermes-proxy/hermes-proxy"
APP_TITLE = "hermes-proxy"


class OpenRouterDialect(Dialect):
    kind = "openrouter"
    thinking_prompt = "none"
    reports_cost = True

    def with_reasoning(self, payload: Mapping[str, Any], decision: ReasoningDecision, route: Route) -> dict[str, Any]:
        out = super().with_reasoning(payload, decision, route)
        reasoning: dict[str, Any] = {"enabled": decision.enabled}
        if decision.enabled and decision.max_reasoning_tokens is not None and self.enforces_reasoning_budget(route):
            reasoning["max_tokens"] = decision.max_reasoning_tokens
        out["reasoning"] = reasoning
        return out

    def template_default_system(self, payload: Mapping[str, Any]) -> str:
        # reasoning on is a request field here, and the host's template picks the deep-thinking prompt only when there
        # is no system message: rendered tools insert one, so they carry the prompt themselves
        reasoning = payload.get("reasoning")
        if isinstance(reasoning, Mapping) and reasoning.get("enabled"):
            return DEEP_THINKING_PROMPT
        return super().template_default_system(payload)

    def enforces_reasoning_budget(self, route: Route) -> bool:
        return route.honours_reasoning_budget

    def read_usage(self, raw: Any) -> Usage | None:
        usage = super().read_usage(raw)
        if usage is None or usage.upstream_cost_usd is None or not raw.get("is_byok"):
            return usage
        details = raw.get("cost_details")
        provider = usd_from_json(details.get("upstream_inference_cost")) if isinstance(details, Mapping) else None
        if provider is None:
            # a BYOK cost without the provider's part would bill the fee alone: price the tokens instead
            return dataclasses.replace(usage, upstream_cost_usd=None)
        return dataclasses.replace(usage, upstream_cost_usd=usage.upstream_cost_usd + provider)

    def headers(self) -> dict[str, str]:
        return {"HTTP-Referer": APP_URL, "X-OpenRouter-Title": APP_TITLE, "X-Title": APP_TITLE}

