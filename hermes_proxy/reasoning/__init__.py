"""Hermes 4 hybrid reasoning, one responsibility per module:

- :mod:`.prompts` - the texts (deep-thinking prompt, ``<think>`` tags, ...), one copy each, and the pure helpers that
  add or remove the deep-thinking prompt in a message list;
- :mod:`.decision` - the request-side decision, pure: on/off and its precedence, output format, budget;
- :mod:`.splitter` - :class:`ThinkSplitter`, the streaming ``<think>`` splitter;
- :mod:`.shaper` - :class:`OutputShaper`, split pieces to the client's delta fields;
- :mod:`.history` - earlier assistant turns made safe to resend;
- :mod:`.budget` - the follow-up request when a reasoning budget is reached;
- :mod:`.upstream_mapping` - the per-upstream-kind mapping (moving into the upstream dialects).

This package re-exports the names the rest of the code imported from the former ``reasoning`` module. Three keep
their former per-kind signatures: ``clean_history``, ``continuation_payload`` and ``forced_answer_payload`` here are
the ``*_for_kind`` functions of :mod:`.upstream_mapping`; the kind-neutral functions of the same names live in
:mod:`.history` and :mod:`.budget`.
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
from hermes_proxy.reasoning.upstream_mapping import (
    UPSTREAM_KINDS,
    apply_reasoning,
)
from hermes_proxy.reasoning.upstream_mapping import (
    clean_history_for_kind as clean_history,
)
from hermes_proxy.reasoning.upstream_mapping import (
    continuation_payload_for_kind as continuation_payload,
)
from hermes_proxy.reasoning.upstream_mapping import (
    forced_answer_payload_for_kind as forced_answer_payload,
)

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
    "UPSTREAM_KINDS",
    "OutputShaper",
    "ReasoningDecision",
    "ReasoningFormat",
    "ThinkSplitter",
    "apply_reasoning",
    "clean_history",
    "continuation_payload",
    "forced_answer_payload",
    "has_deep_thinking_prompt",
    "resolve_reasoning",
    "split_model_suffix",
    "strip_think_block",
    "with_deep_thinking_prompt",
    "without_deep_thinking_prompt",
]
