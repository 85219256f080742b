"""The usage record of one request: tokens, and whether they were counted by the upstream or estimated here."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hermes_proxy.money import usd_from_json


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage. ``reasoning_tokens`` is a part of ``completion_tokens``, never added on top.

    ``estimated`` is true when the proxy counted locally because the upstream reported nothing.
    ``upstream_cost_usd`` is the upstream's own reported cost (OpenRouter's ``usage.cost``), which wins over prices.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_prompt_tokens: int = 0
    estimated: bool = False
    upstream_cost_usd: Decimal | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_openai(self, cost_usd: Decimal | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "prompt_tokens_details": {"cached_tokens": self.cached_prompt_tokens},
        }
        if cost_usd is not None:
            body["cost"] = float(cost_usd)
        if self.estimated:
            body["estimated"] = True
        return body

    @classmethod
    def from_openai(cls, raw: Any) -> Usage | None:
        """Read an upstream's ``usage`` object; ``None`` when it is missing or unusable. An explicit 0 is a real 0."""
        if not isinstance(raw, dict):
            return None
        prompt = _int(raw.get("prompt_tokens"))
        completion = _int(raw.get("completion_tokens"))
        if prompt is None and completion is None:
            return None
        details = raw.get("completion_tokens_details")
        reasoning = _int(details.get("reasoning_tokens")) if isinstance(details, dict) else None
        prompt_details = raw.get("prompt_tokens_details")
        cached = _int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else None
        upstream_cost = usd_from_json(raw.get("cost"))
        completion = completion or 0
        return cls(
            prompt_tokens=prompt or 0,
            completion_tokens=completion,
            reasoning_tokens=min(reasoning or 0, completion),
            cached_prompt_tokens=cached or 0,
            upstream_cost_usd=upstream_cost,
        )


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return max(int(value), 0)
