"""Hermes tool calling and structured output, pure (no I/O), one job per module:

- :mod:`.render` - Hermes' own format for hosts that take raw text: the ``<tools>`` system prompt (``tool_choice``
  as instruction text) and the history (``tool_calls`` and tool results as ``<tool_call>``/``<tool_response>``);
  the one copy of the format's texts;
- :mod:`.parser` - :class:`ToolCallParser`, the streaming ``<tool_call>`` parser, and OpenAI ``tool_calls`` deltas;
- :mod:`.choice` - ``tools``/``tool_choice`` request validation (400s) and the after-the-answer ``tool_choice`` check;
- :mod:`.structured` - ``response_format``: validation, the JSON-mode instruction, the check of the answer;
- :mod:`.examples` - an example value for a JSON schema (the demo upstream's arguments and JSON answers).

Whether a kind of upstream takes tools natively or rendered is its dialect's decision (:mod:`hermes_proxy.upstreams`).
"""

from __future__ import annotations

from hermes_proxy.tools.choice import check_tool_choice, validate_tools
from hermes_proxy.tools.examples import example_value
from hermes_proxy.tools.parser import (
    CallArguments,
    CallEnd,
    CallStart,
    Event,
    Malformed,
    Text,
    ToolCallParser,
    parse_text,
    to_openai_deltas,
    tool_calls_of,
)
from hermes_proxy.tools.render import (
    choice_from_system_prompt,
    render_messages,
    tools_from_system_prompt,
    tools_system_prompt,
    with_tools_system_prompt,
)
from hermes_proxy.tools.structured import (
    check_structured,
    format_instruction,
    response_format_from_system_prompt,
    strip_fence,
    validate_response_format,
)

__all__ = [
    "CallArguments",
    "CallEnd",
    "CallStart",
    "Event",
    "Malformed",
    "Text",
    "ToolCallParser",
    "check_structured",
    "check_tool_choice",
    "choice_from_system_prompt",
    "example_value",
    "format_instruction",
    "parse_text",
    "render_messages",
    "response_format_from_system_prompt",
    "strip_fence",
    "to_openai_deltas",
    "tool_calls_of",
    "tools_from_system_prompt",
    "tools_system_prompt",
    "validate_response_format",
    "validate_tools",
    "with_tools_system_prompt",
]
