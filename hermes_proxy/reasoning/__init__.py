"""Hermes 4 hybrid reasoning, one responsibility per module:

- :mod:`.prompts` - the texts (deep-thinking prompt, ``<think>`` tags, ...), one copy each, and the pure helpers that
  add or remove the deep-thinking prompt in a message list;
- :mod:`.decision` - the request-side decision, pure: on/off and its precedence, output format, budget;
- :mod:`.splitter` - :class:`ThinkSplitter`, the streaming ``<think>`` splitter;
- :mod:`.shaper` - :class:`OutputShaper`, split pieces to the client's delta fields;
- :mod:`.history` - earlier assistant turns made safe to resend;
- :mod:`.budget` - the follow-up request when a reasoning budget is reached.

How each upstream kind expresses reasoning is its dialect's (:mod:`hermes_proxy.upstreams`).

This package re-exports the names used across the code.
"""

from __future__ import annotations

from hermes_proxy.reasoning.decision import (
    MODEL_SUFFIXES,
    REASONING_FORMATS,
    REASONING_HEADER,
    REASONING_REQUEST_FIELDS,
    ReasoningDecision,
    ReasoningFormat,
    resolve_reasoning,
    split_model_suffix,
)
from hermes_proxy.reasoning.history import strip_think_block
from hermes_proxy.reasoning.prompts import (
    DEEP_THINKING_PROMPT,
    EMPTY_THINK,
    FORCED_ANSWER_NOTE,
    THINK_CLOSE,
    THINK_OPEN,
    has_deep_thinking_prompt,
    with_deep_thinking_prompt,
    without_deep_thinking_prompt,
)
from hermes_proxy.reasoning.shaper import OutputShaper
from hermes_proxy.reasoning.splitter import ThinkSplitter

__all__ = [
    "DEEP_THINKING_PROMPT",
    "EMPTY_THINK",
    "FORCED_ANSWER_NOTE",
    "MODEL_SUFFIXES",
    "REASONING_FORMATS",
    "REASONING_HEADER",
    "REASONING_REQUEST_FIELDS",
    "THINK_CLOSE",
    "THINK_OPEN",
    "OutputShaper",
    "ReasoningDecision",
    "ReasoningFormat",
    "ThinkSplitter",
    "has_deep_thinking_prompt",
    "resolve_reasoning",
    "split_model_suffix",
    "strip_think_block",
    "with_deep_thinking_prompt",
    "without_deep_thinking_prompt",
]
