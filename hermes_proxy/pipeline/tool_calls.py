"""Part of the answer stage: tool calls read back from the text of a host that got Hermes' rendered tools, and the
checks of a finished answer against what the request asked (``tool_choice``, a JSON ``response_format``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hermes_proxy.tools.choice import check_tool_choice
from hermes_proxy.tools.parser import CallStart, Event, Malformed, Text, ToolCallParser, to_openai_deltas
from hermes_proxy.tools.structured import check_structured


class RenderedToolCalls:
    """``<tool_call>`` blocks in the answer text -> OpenAI ``tool_calls`` deltas; the rest stays content. A block
    that is not a well-formed call is returned as content, never dropped, with a note."""

    def __init__(self) -> None:
        self._parser = ToolCallParser()
        self.names: list[str] = []
        self.notes: list[str] = []

    def feed(self, text: str) -> tuple[str, list[dict[str, Any]]]:
        return self._read(self._parser.feed(text))

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        return self._read(self._parser.finish())

    def _read(self, events: list[Event]) -> tuple[str, list[dict[str, Any]]]:
        content: list[str] = []
        for event in events:
            if isinstance(event, Text):
                content.append(event.text)
            elif isinstance(event, Malformed):
                content.append(event.raw_text)
                self.notes.append(f"a malformed tool call was returned as content ({event.reason})")
            elif isinstance(event, CallStart):
                self.names.append(event.name)
        return "".join(content), to_openai_deltas(events)


@dataclass(slots=True)
class AnswerChecks:
    """What the finished answer did not honour: notes for the client (``x-hermes-note``) and, for a strict JSON
    schema the answer does not match, the error the client gets."""

    notes: list[str] = field(default_factory=list)
    structured_error: str | None = None


def check_answer(body: Mapping[str, Any], content: str, call_names: list[str]) -> AnswerChecks:
    checks = AnswerChecks()
    if body.get("tools"):
        problem = check_tool_choice(body.get("tool_choice"), call_names, body.get("tools"))
        if problem is not None:
            checks.notes.append(problem)
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping) and not call_names:
        problem = check_structured(response_format, content)
        if problem is not None:
            strict = (response_format.get("type") == "json_schema"
                      and (response_format.get("json_schema") or {}).get("strict") is True)
            if strict:
                checks.structured_error = problem
            else:
                checks.notes.append(problem)
    return checks
