"""The request-side reasoning decision, pure: on or off, who decided, the output format, the budget.

Toggle precedence (:func:`resolve_reasoning`), first match wins:

1. **Team policy** ``reasoning = "force" | "deny"``: the policy decides (source ``policy``). If the client *explicitly*
   asked for the opposite - in the body, with the ``X-Hermes-Reasoning`` header or with a model suffix - the request
   is refused with :class:`~hermes_proxy.errors.PolicyDenied` (403) naming the team, the rule and how the client
   asked; silently overriding an explicit ask would bill the client for reasoning it turned off, or hide an answer
   quality it asked for. Only the client's *effective* ask counts (body over header over suffix): a header the body
   overrides does not trigger the 403.
2. **Request body** (source ``request``): ``"reasoning": true|false``; OpenRouter's object
   ``"reasoning": {"enabled", "effort", "max_tokens", "exclude"}`` (``effort`` or ``max_tokens`` without ``enabled``
   means enabled; ``effort: "none"`` means off); ``"reasoning_effort": "none"|"minimal"|"low"|"medium"|"high"``
   (``none`` is off); vLLM's ``"chat_template_kwargs": {"thinking": bool}``. Fields that disagree are a 400 naming both.
   Weakest body signal: the exact deep-thinking system prompt in a system message counts as asking for reasoning (it
   is how the model card switches reasoning on) unless an explicit field says otherwise.
3. **Header** ``X-Hermes-Reasoning: on|off`` (also ``true|false|1|0``, any case; anything else is a 400).
4. **Model alias suffix** ``:thinking`` (on) / ``:fast`` (off) (see :func:`split_model_suffix`).
5. **Team default** (``policy.reasoning_default``), then the **model default**.

The output format comes from ``"reasoning_format": "parsed"|"raw"|"hidden"`` (default ``parsed``); OpenRouter's
``"exclude": true`` means ``hidden`` (the upstream still reasons, and is still billed for it). A reasoning budget comes
from ``reasoning.max_tokens`` or ``max_reasoning_tokens``.

The body fields read here are the proxy's own (:data:`REASONING_REQUEST_FIELDS`, plus
``chat_template_kwargs.thinking``): whatever goes upstream must drop them and express the decision the upstream's
own way.
"""

from __future__ import annotations

import json
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from hermes_proxy.errors import InvalidRequest, PolicyDenied
from hermes_proxy.reasoning.prompts import has_deep_thinking_prompt
from policies.types import TeamPolicy

__all__ = [
    "MODEL_SUFFIXES",
    "REASONING_FORMATS",
    "REASONING_HEADER",
    "REASONING_REQUEST_FIELDS",
    "ReasoningDecision",
    "ReasoningFormat",
    "ReasoningSource",
    "resolve_reasoning",
    "split_model_suffix",
]

REASONING_HEADER = "X-Hermes-Reasoning"

ReasoningFormat = Literal["parsed", "raw", "hidden"]
ReasoningSource = Literal["policy", "request", "header", "alias", "team", "model"]
REASONING_FORMATS: tuple[str, ...] = get_args(ReasoningFormat)
MODEL_SUFFIXES: tuple[str, ...] = ("thinking", "fast")
#: Top-level request fields that only the proxy reads (never sent upstream as they are).
REASONING_REQUEST_FIELDS = frozenset({"reasoning", "reasoning_effort", "reasoning_format", "max_reasoning_tokens"})

_EFFORTS = ("none", "minimal", "low", "medium", "high")
_OBJECT_KEYS = ("enabled", "effort", "max_tokens", "exclude")
_HEADER_ON = ("on", "true", "1")
_HEADER_OFF = ("off", "false", "0")


@dataclass(frozen=True, slots=True)
class ReasoningDecision:
    """Whether this request reasons, who decided, how the client sees the reasoning, and its budget (if any)."""

    enabled: bool
    source: ReasoningSource
    format: ReasoningFormat = "parsed"
    max_reasoning_tokens: int | None = None

    def header_value(self) -> str:
        """For the ``X-Hermes-Reasoning`` response header: ``on; source=request``, ``off; reason=policy``."""
        state = "on" if self.enabled else "off"
        if self.source == "policy":
            return f"{state}; reason=policy"
        return f"{state}; source={self.source}"


@dataclass(frozen=True, slots=True)
class _Ask:
    """One way the client asked: ``param`` (for errors), the value, and a human description of how."""

    param: str
    value: bool
    how: str


def split_model_suffix(model: str, known: Container[str] = ()) -> tuple[str, str | None]:
    """``"hermes-4-405b:thinking"`` -> ``("hermes-4-405b", "thinking")``; no suffix -> ``(model, None)``.

    A model id found in ``known`` is returned whole (for configured ids that contain a colon). Any other suffix is a
    400 listing the valid ones.
    """
    if not isinstance(model, str) or ":" not in model or model in known:
        return model, None
    base, suffix = model.rsplit(":", 1)
    lowered = suffix.lower()
    if lowered not in MODEL_SUFFIXES or not base:
        raise InvalidRequest(
            f"unknown model suffix ':{suffix}' in '{model}': valid suffixes are :thinking (reasoning on) and "
            ":fast (reasoning off)", param="model")
    return base, lowered


def resolve_reasoning(body: Mapping[str, Any], header: str | None, suffix: str | None, policy: TeamPolicy,
                      model_default: bool) -> ReasoningDecision:
    """Decide reasoning for one request (precedence in the module docstring). Raises InvalidRequest / PolicyDenied."""
    body_ask, max_tokens, fmt = _parse_body(body)
    header_ask = _parse_header(header)
    alias_ask = _parse_suffix(suffix)
    client = body_ask or header_ask or alias_ask

    enabled: bool
    source: ReasoningSource
    rule = policy.reasoning
    if rule in ("force", "deny"):
        wanted = rule == "force"
        if client is not None and client.value != wanted:
            if wanted:
                what = "reasoning is always on for this team"
                asked = "asked to turn it off"
            else:
                what = "reasoning is disabled for this team"
                asked = "asked for it"
            raise PolicyDenied(
                f"team '{policy.name}' has policy reasoning = \"{rule}\" ({what}), but the request {asked} with "
                f"{client.how}", param=client.param)
        enabled, source = wanted, "policy"
    elif client is not None:
        enabled = client.value
        if client is body_ask:
            source = "request"
        elif client is header_ask:
            source = "header"
        else:
            source = "alias"
    elif policy.reasoning_default is not None:
        enabled, source = policy.reasoning_default, "team"
    else:
        enabled, source = bool(model_default), "model"
    return ReasoningDecision(enabled=enabled, source=source, format=fmt,
                             max_reasoning_tokens=max_tokens if enabled else None)


def _parse_body(body: Mapping[str, Any]) -> tuple[_Ask | None, int | None, ReasoningFormat]:
    asks: list[_Ask] = []
    budgets: list[tuple[str, int]] = []
    fmt: ReasoningFormat | None = None
    exclude = False

    raw = body.get("reasoning")
    if isinstance(raw, bool):
        asks.append(_Ask("reasoning", raw, f'"reasoning": {_js(raw)} in the body'))
    elif isinstance(raw, Mapping):
        for key in raw:
            if key not in _OBJECT_KEYS:
                raise InvalidRequest(
                    f"unknown field reasoning.{key}: the reasoning object takes {', '.join(_OBJECT_KEYS)}",
                    param=f"reasoning.{key}")
        enabled = raw.get("enabled")
        if enabled is not None:
            if not isinstance(enabled, bool):
                raise InvalidRequest(f"reasoning.enabled must be a boolean; got {_js(enabled)}",
                                     param="reasoning.enabled")
            asks.append(_Ask("reasoning.enabled", enabled, f'"reasoning": {{"enabled": {_js(enabled)}}} in the body'))
        effort = raw.get("effort")
        if effort is not None:
            if effort not in _EFFORTS:
                raise InvalidRequest(f"reasoning.effort must be one of {', '.join(_EFFORTS)}; got {_js(effort)}",
                                     param="reasoning.effort")
            asks.append(_Ask("reasoning.effort", effort != "none",
                             f'"reasoning": {{"effort": {_js(effort)}}} in the body'))
        budget = raw.get("max_tokens")
        if budget is not None:
            budgets.append(("reasoning.max_tokens", _positive_int(budget, "reasoning.max_tokens")))
            asks.append(_Ask("reasoning.max_tokens", True, f'"reasoning": {{"max_tokens": {budget}}} in the body'))
        excl = raw.get("exclude")
        if excl is not None:
            if not isinstance(excl, bool):
                raise InvalidRequest(f"reasoning.exclude must be a boolean; got {_js(excl)}",
                                     param="reasoning.exclude")
            exclude = excl
    elif raw is not None:
        raise InvalidRequest(
            f"reasoning must be a boolean or an object {{enabled, effort, max_tokens, exclude}}; got {_js(raw)}",
            param="reasoning")

    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in _EFFORTS:
            raise InvalidRequest(f"reasoning_effort must be one of {', '.join(_EFFORTS)}; got {_js(effort)}",
                                 param="reasoning_effort")
        asks.append(_Ask("reasoning_effort", effort != "none", f'"reasoning_effort": {_js(effort)} in the body'))

    kwargs = body.get("chat_template_kwargs")
    if kwargs is not None:
        if not isinstance(kwargs, Mapping):
            raise InvalidRequest(f"chat_template_kwargs must be an object; got {_js(kwargs)}",
                                 param="chat_template_kwargs")
        thinking = kwargs.get("thinking")
        if thinking is not None:
            if not isinstance(thinking, bool):
                raise InvalidRequest(f"chat_template_kwargs.thinking must be a boolean; got {_js(thinking)}",
                                     param="chat_template_kwargs.thinking")
            asks.append(_Ask("chat_template_kwargs.thinking", thinking,
                             f'"chat_template_kwargs": {{"thinking": {_js(thinking)}}} in the body'))

    budget = body.get("max_reasoning_tokens")
    if budget is not None:
        budgets.append(("max_reasoning_tokens", _positive_int(budget, "max_reasoning_tokens")))

    rf = body.get("reasoning_format")
    if rf is not None:
        if rf not in REASONING_FORMATS:
            raise InvalidRequest(f"reasoning_format must be one of {', '.join(REASONING_FORMATS)}; got {_js(rf)}",
                                 param="reasoning_format")
        fmt = rf
    if exclude:
        if fmt is not None and fmt != "hidden":
            raise InvalidRequest(
                f'reasoning.exclude = true conflicts with "reasoning_format": {_js(fmt)}; send one of them',
                param="reasoning_format")
        fmt = "hidden"

    for other in asks[1:]:
        if other.value != asks[0].value:
            raise InvalidRequest(
                f"conflicting reasoning fields: {asks[0].param} asks for reasoning "
                f"{'on' if asks[0].value else 'off'} but {other.param} asks for it {'on' if other.value else 'off'}; "
                "send one of them", param=other.param)
    if len(budgets) == 2 and budgets[0][1] != budgets[1][1]:
        raise InvalidRequest(
            f"conflicting reasoning budgets: {budgets[0][0]} = {budgets[0][1]} but {budgets[1][0]} = {budgets[1][1]}; "
            "send one of them", param=budgets[1][0])

    ask: _Ask | None = None
    if asks:
        ask = asks[0] if len(asks) == 1 else _Ask(asks[0].param, asks[0].value, " and ".join(a.how for a in asks))
    elif has_deep_thinking_prompt(body.get("messages")):
        ask = _Ask("messages", True, "the deep-thinking system prompt in a system message")
    return ask, budgets[0][1] if budgets else None, fmt or "parsed"


def _parse_header(header: str | None) -> _Ask | None:
    if header is None:
        return None
    value = header.strip().lower()
    if value in _HEADER_ON:
        return _Ask(REASONING_HEADER, True, f"the header {REASONING_HEADER}: {header.strip()}")
    if value in _HEADER_OFF:
        return _Ask(REASONING_HEADER, False, f"the header {REASONING_HEADER}: {header.strip()}")
    raise InvalidRequest(f"{REASONING_HEADER} must be on or off (or true/false, 1/0); got {header!r}",
                         param=REASONING_HEADER)


def _parse_suffix(suffix: str | None) -> _Ask | None:
    if suffix is None:
        return None
    if suffix == "thinking":
        return _Ask("model", True, "the model suffix ':thinking'")
    if suffix == "fast":
        return _Ask("model", False, "the model suffix ':fast'")
    raise InvalidRequest(f"unknown model suffix ':{suffix}': valid suffixes are :thinking and :fast", param="model")


def _positive_int(value: Any, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"{param} must be a positive integer; got {_js(value)}", param=param)
    return value


def _js(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)

