"""Tool calls in a saved conversation, made readable: ``→ get_weather(city="Oslo")`` and ``← get_weather: {...}``.

The chat does not run tools; a conversation it loads may still hold them (saved with ``tool_calls`` and ``tool``
messages, or an answer whose text holds Hermes' raw ``<tool_call>`` blocks). This module turns them into short lines
for the conversation pane and into markdown for an export. Pure, apart from :class:`ToolCallBlock`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.widgets import Static

from hermes_proxy.tools.parser import Text, parse_text, tool_calls_of
from hermes_proxy.tools.render import TOOL_CALL_OPEN, tool_name

if TYPE_CHECKING:
    from tui.store import StoredMessage

RESULT_CHARS = 120  # a result is cut to this many characters on screen (an export keeps it whole)
ARGUMENT_CHARS = 60  # one argument's value on screen


@dataclass(frozen=True, slots=True)
class AnswerParts:
    """An assistant message split into its text and its tool calls (OpenAI ``tool_calls`` entries)."""

    text: str
    calls: tuple[Mapping[str, Any], ...]


def answer_parts(content: str, tool_calls: Sequence[Mapping[str, Any]] | None) -> AnswerParts:
    """The text and calls of a saved answer: its ``tool_calls``, or the ``<tool_call>`` blocks in its text."""
    if tool_calls:
        return AnswerParts(content, tuple(tool_calls))
    if TOOL_CALL_OPEN not in content:
        return AnswerParts(content, ())
    events = parse_text(content, id_factory=lambda: "")
    calls = tool_calls_of(events)
    if not calls:
        return AnswerParts(content, ())
    text = "".join(event.text for event in events if isinstance(event, Text))
    return AnswerParts(text.strip(), tuple(calls))


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def call_line(call: Mapping[str, Any], *, limit: int | None = ARGUMENT_CHARS) -> str:
    """``→ get_weather(city="Oslo", days=2)``; arguments that are not a JSON object are shown as written."""
    function = call.get("function")
    raw = function.get("arguments", "") if isinstance(function, Mapping) else ""
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        arguments = raw
    if isinstance(arguments, Mapping):
        parts = []
        for key, value in arguments.items():
            shown = json.dumps(value, ensure_ascii=False)
            parts.append(f"{key}={_short(shown, limit) if limit else shown}")
        inner = ", ".join(parts)
    else:
        inner = str(arguments) if arguments not in (None, "") else ""
        inner = _short(inner, limit) if limit else inner
    return f"→ {tool_name(call) or '?'}({inner})"


def result_line(name: str, content: str, *, limit: int | None = RESULT_CHARS) -> str:
    """``← get_weather: {"temp_c": 18}``, cut to ``limit`` characters (``None``: whole)."""
    body = _short(content, limit) if limit else content
    return f"← {name or 'tool'}: {body}"


def call_names(calls: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Call id -> function name, to name the results that answer them."""
    return {str(c["id"]): tool_name(c) for c in calls if isinstance(c.get("id"), str) and c["id"]}


def result_name(content: str, tool_call_id: str | None, names: Mapping[str, str]) -> str:
    """The function a result answers: by its call id, else a Hermes ``{"name": …, "content": …}`` body's name."""
    if tool_call_id and tool_call_id in names:
        return names[tool_call_id]
    try:
        body = json.loads(content)
    except ValueError:
        return ""
    return str(body["name"]) if isinstance(body, dict) and isinstance(body.get("name"), str) else ""


def calls_markdown(calls: Sequence[Mapping[str, Any]]) -> list[str]:
    """Markdown lines for an answer's calls (whole arguments)."""
    return [f"- `{call_line(call, limit=None)}`" for call in calls]


def result_markdown(name: str, content: str) -> list[str]:
    """Markdown lines for one tool result (whole)."""
    fence = "```json" if content.lstrip()[:1] in ("{", "[") else "```"
    return [f"**← {name or 'tool'}**", "", fence, content.strip(), "```"]


class ToolCallBlock(Static):
    """A compact block of tool calls or tool results in the conversation pane (one line each)."""

    DEFAULT_CSS = """
    ToolCallBlock {
        margin: 0 2 1 4;
        padding: 0 1;
        color: $text-muted;
        border-left: outer $secondary;
    }
    ToolCallBlock.-result {
        border-left: outer $success;
    }
    """

    def __init__(self, lines: Sequence[str], *, result: bool = False) -> None:
        super().__init__("\n".join(lines), classes="tool-calls" + (" -result" if result else ""), markup=False)
        self.lines = tuple(lines)


def tool_result_block(message: StoredMessage, names: Mapping[str, str]) -> ToolCallBlock:
    """A saved ``tool`` message as one ``← name: result`` line."""
    name = result_name(message.content, message.tool_call_id, names)
    return ToolCallBlock([result_line(name, message.content)], result=True)
