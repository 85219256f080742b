"""The per-upstream-kind side of reasoning, until each kind's dialect owns its part.

:func:`apply_reasoning` expresses a :class:`~hermes_proxy.reasoning.decision.ReasoningDecision` the way each upstream
kind understands it. The ``*_for_kind`` functions keep the signatures the gateway uses today (``kind`` in, the
kind-neutral pieces of :mod:`~hermes_proxy.reasoning.history` and :mod:`~hermes_proxy.reasoning.budget` out); they
go once the dialects call those pieces directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

from hermes_proxy.reasoning.budget import continuation_payload, forced_answer_payload
from hermes_proxy.reasoning.decision import REASONING_REQUEST_FIELDS, ReasoningDecision
from hermes_proxy.reasoning.history import clean_history
from hermes_proxy.reasoning.prompts import with_deep_thinking_prompt, without_deep_thinking_prompt

__all__ = [
    "UPSTREAM_KINDS",
    "UpstreamKind",
    "apply_reasoning",
    "clean_history_for_kind",
    "continuation_payload_for_kind",
    "forced_answer_payload_for_kind",
]

UpstreamKind = Literal["vllm", "openrouter", "nous", "litellm", "demo"]
UPSTREAM_KINDS: tuple[str, ...] = get_args(UpstreamKind)

_OFF = ReasoningDecision(enabled=False, source="policy")


def apply_reasoning(payload: Mapping[str, Any], kind: str, decision: ReasoningDecision) -> dict[str, Any]:
    """A new upstream payload for ``kind`` carrying ``decision``; the input is not modified.

    Proxy-only fields (:data:`~hermes_proxy.reasoning.decision.REASONING_REQUEST_FIELDS`,
    ``chat_template_kwargs.thinking``) are removed, then per kind:

    - ``vllm``: ``chat_template_kwargs.thinking`` (other kwargs kept); on: ``skip_special_tokens: false`` and the
      deep-thinking prompt prepended to the caller's first system message (the template injects it only when there is
      none);
    - ``openrouter``: ``reasoning: {"enabled": on}`` plus ``max_tokens`` for a budget (``exclude`` is never sent: the
      proxy hides reasoning itself, so it can still count and bill it);
    - ``nous``, ``litellm``: on: the prompt prepended to the caller's system message, or inserted as one; off: nothing;
    - ``demo``: ``reasoning: bool``.

    Off means off everywhere: the exact deep-thinking prompt is removed from system messages (a system message left
    empty is dropped).
    """
    _check_kind(kind)
    on = decision.enabled
    out = {k: v for k, v in payload.items() if k not in REASONING_REQUEST_FIELDS}
    kwargs = out.pop("chat_template_kwargs", None)
    if isinstance(kwargs, Mapping):
        kwargs = {k: v for k, v in kwargs.items() if k != "thinking"}
        if kwargs:
            out["chat_template_kwargs"] = kwargs
    elif kwargs is not None:
        out["chat_template_kwargs"] = kwargs
    messages = out.get("messages")
    if isinstance(messages, list):
        if not on:
            out["messages"] = without_deep_thinking_prompt(messages)
        elif kind == "vllm":
            out["messages"] = with_deep_thinking_prompt(messages, insert=False)
        elif kind in ("nous", "litellm"):
            out["messages"] = with_deep_thinking_prompt(messages, insert=True)

    if kind == "vllm":
        base = out.get("chat_template_kwargs")
        out["chat_template_kwargs"] = {**(base if isinstance(base, Mapping) else {}), "thinking": on}
        if on:
            out["skip_special_tokens"] = False
    elif kind == "openrouter":
        reasoning: dict[str, Any] = {"enabled": on}
        if on and decision.max_reasoning_tokens is not None:
            reasoning["max_tokens"] = decision.max_reasoning_tokens
        out["reasoning"] = reasoning
    elif kind == "demo":
        out["reasoning"] = on
    return out


def clean_history_for_kind(messages: list[Any], kind: str, enabled: bool) -> list[Any]:
    """:func:`~hermes_proxy.reasoning.history.clean_history`, with the ``"<think> </think>"`` prefix for vLLM when on."""
    return clean_history(messages, empty_think_prefix=kind == "vllm" and enabled)


def continuation_payload_for_kind(payload: Mapping[str, Any], kind: str, reasoning_so_far: str,
                                  remaining_tokens: int) -> dict[str, Any] | None:
    """The vLLM continuation (:func:`~hermes_proxy.reasoning.budget.continuation_payload`); ``None`` for other kinds."""
    _check_kind(kind)
    if remaining_tokens < 1:
        raise ValueError(f"remaining_tokens must be positive; got {remaining_tokens}")
    if kind != "vllm":
        return None
    return continuation_payload(payload, reasoning_so_far, remaining_tokens)


def forced_answer_payload_for_kind(payload: Mapping[str, Any], kind: str, reasoning_so_far: str,
                                   remaining_tokens: int) -> dict[str, Any]:
    """:func:`~hermes_proxy.reasoning.budget.forced_answer_payload` after switching reasoning off ``kind``'s way."""
    if remaining_tokens < 1:
        raise ValueError(f"remaining_tokens must be positive; got {remaining_tokens}")
    return forced_answer_payload(apply_reasoning(payload, kind, _OFF), reasoning_so_far, remaining_tokens)


def _check_kind(kind: str) -> None:
    if kind not in UPSTREAM_KINDS:
        raise ValueError(f"unknown upstream kind {kind!r}; expected one of {', '.join(UPSTREAM_KINDS)}")
