"""History hygiene: earlier assistant turns resent without their reasoning. Pure and upstream-neutral."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hermes_proxy.reasoning.prompts import EMPTY_THINK, THINK_CLOSE, THINK_OPEN

__all__ = ["REASONING_MESSAGE_FIELDS", "clean_history", "strip_think_block"]

#: Assistant-message fields that carry reasoning (the conventions of vLLM, DeepSeek, OpenRouter).
REASONING_MESSAGE_FIELDS = frozenset({"reasoning", "reasoning_content", "reasoning_details"})

_OPEN_LEN = len(THINK_OPEN)
_CLOSE_LEN = len(THINK_CLOSE)


def strip_think_block(content: str) -> str:
    """``content`` without a leading ``<think>…</think>`` block (answer with leading whitespace stripped).

    Content that does not open with ``<think>`` is returned unchanged; an unclosed block (a turn cut inside its
    reasoning) leaves ``""``.
    """
    s = content.lstrip()
    if not s.startswith(THINK_OPEN):
        return content
    i = s.find(THINK_CLOSE, _OPEN_LEN)
    if i < 0:
        return ""
    return s[i + _CLOSE_LEN :].lstrip()


def clean_history(messages: list[Any], *, empty_think_prefix: bool) -> list[Any]:
    """A new message list in which earlier assistant turns carry no reasoning.

    Assistant messages lose :data:`REASONING_MESSAGE_FIELDS` and a leading ``<think>…</think>`` block in their
    content. With ``empty_think_prefix`` (the caller's choice: the Hermes template on vLLM with reasoning on) they are
    sent as that template expects, ``"<think> </think>" + answer`` (it splits each earlier turn on ``</think>`` and
    fails when it is missing) - tool-call turns included, whose null content becomes ``"<think> </think>"``. Other
    roles are passed through untouched (the same objects).
    """
    prefix = empty_think_prefix
    out: list[Any] = []
    for message in messages:
        if not (isinstance(message, Mapping) and message.get("role") == "assistant"):
            out.append(message)
            continue
        new = {k: v for k, v in message.items() if k not in REASONING_MESSAGE_FIELDS}
        content = new.get("content")
        if isinstance(content, str):
            answer = strip_think_block(content)
            new["content"] = EMPTY_THINK + answer if prefix else answer
        elif isinstance(content, list):
            new["content"] = _clean_parts(content, prefix)
        elif content is None and prefix:
            new["content"] = EMPTY_THINK
        out.append(new)
    return out


def _clean_parts(parts: list[Any], prefix: bool) -> list[Any]:
    out = list(parts)
    for i, part in enumerate(out):
        if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str):
            answer = strip_think_block(part["text"])
            out[i] = {**part, "text": EMPTY_THINK + answer if prefix else answer}
            return out
    if prefix:
        out.insert(0, {"type": "text", "text": EMPTY_THINK})
    return out
