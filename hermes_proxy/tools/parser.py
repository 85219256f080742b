"""A streaming ``<tool_call>`` parser for the text Hermes writes: pure, correct at every split of its input.

Feed it the answer text as it arrives (:meth:`ToolCallParser.feed`), then :meth:`ToolCallParser.finish`; both
return events:

- :class:`Text` - content outside calls, released as soon as it cannot be the start of a ``<tool_call>`` tag;
- :class:`CallStart` / :class:`CallArguments` / :class:`CallEnd` - one well-formed call;
- :class:`Malformed` - a ``<tool_call>`` block that is not ``{"name": str, "arguments": object | str}``, or that the
  stream never closed. Its raw text (tags included) is returned for the caller to send as content with an x-hermes
  note: nothing the model wrote is dropped.

Decisions
---------
- Arguments are not streamed fragment by fragment: a call block is buffered until ``</tool_call>``, then given as
  :class:`CallStart`, ONE :class:`CallArguments` carrying the whole arguments JSON (``json.dumps`` of the object,
  compact and ``ensure_ascii=False``, or the string as written when the model wrote ``arguments`` as a string) and
  :class:`CallEnd`. A call is short, and this is exact at every split.
- A missing ``"arguments"`` is a call without arguments (``"{}"``); any other shape is :class:`Malformed`.
- ``<tool_call>`` in prose: the tag opens a call only when the first non-blank character after it is ``{`` (or
  ``[``: a JSON array there is a malformed call, reported).
  "use the <tool_call> tag" is text (tag included); ``<tool_call>\\nget_weather(...)`` is text too, not a call.
  A stream that ends right after the tag (blanks only) is an unclosed call: :class:`Malformed`.
- ``</tool_call>`` inside a JSON string of the call (an argument that mentions the tag) does not close the call.
- Text after the calls is :class:`Text` as well (vLLM's hermes parser drops it; here nothing is dropped).
- Call ids are ``call_`` + 24 url-safe random characters (OpenAI's shape); tests inject ``id_factory``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hermes_proxy.tools.render import TOOL_CALL_CLOSE, TOOL_CALL_OPEN

BLANKS = " \t\r\n"


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class CallStart:
    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class CallArguments:
    index: int
    fragment: str


@dataclass(frozen=True, slots=True)
class CallEnd:
    index: int


@dataclass(frozen=True, slots=True)
class Malformed:
    raw_text: str
    reason: str


Event = Text | CallStart | CallArguments | CallEnd | Malformed


def new_call_id() -> str:
    """An OpenAI-style call id: ``call_`` + 24 url-safe random characters."""
    return "call_" + secrets.token_urlsafe(18)


def _partial_tag(text: str, tag: str) -> int:
    """The length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


def _inside_json_string(text: str) -> bool:
    """Whether ``text`` (the start of a JSON value) ends inside a string literal."""
    inside = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = inside
        elif char == '"':
            inside = not inside
    return inside


def parse_call(body: str) -> tuple[str, str] | str:
    """(name, arguments JSON) of one call block's inside, or the reason it is malformed."""
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        return f"invalid JSON ({exc.msg} at character {exc.pos})"
    except ValueError as exc:  # e.g. a number too long to convert
        return f"invalid JSON ({exc})"
    if not isinstance(value, dict):
        return "the call is not a JSON object"
    name = value.get("name")
    if not isinstance(name, str) or not name:
        return 'the call has no "name" string'
    arguments = value.get("arguments", {})
    if isinstance(arguments, str):
        return name, arguments
    if not isinstance(arguments, dict):
        return '"arguments" is neither an object nor a string'
    return name, json.dumps(arguments, ensure_ascii=False)


class ToolCallParser:
    """Incremental ``<tool_call>`` splitter; see the module docstring for what it decides."""

    def __init__(self, id_factory: Callable[[], str] = new_call_id) -> None:
        self._new_id = id_factory
        self._buffer = ""  # text not yet decided
        self._state = "text"  # "text" | "opened" (tag seen, waiting for "{" or "[") | "call" (inside a call block)
        self._calls = 0
        self._scan = 0  # inside a call: where the search for its close tag resumes (long calls fed token by token)

    @property
    def calls(self) -> int:
        """How many well-formed calls were given so far."""
        return self._calls

    def feed(self, text: str) -> list[Event]:
        self._buffer += text
        events: list[Event] = []
        while self._step(events):
            pass
        return _merged(events)

    def finish(self) -> list[Event]:
        events: list[Event] = []
        if self._state == "text":
            if self._buffer:
                events.append(Text(self._buffer))
        else:
            events.append(Malformed(TOOL_CALL_OPEN + self._buffer, "the <tool_call> block was never closed"))
        self._buffer, self._state, self._scan = "", "text", 0
        return events

    def _step(self, events: list[Event]) -> bool:
        """Decide what the buffer allows; True when the state moved on and the rest must be looked at again."""
        buffer = self._buffer
        if self._state == "text":
            start = buffer.find(TOOL_CALL_OPEN)
            if start < 0:
                keep = _partial_tag(buffer, TOOL_CALL_OPEN)
                if len(buffer) > keep:
                    events.append(Text(buffer[:len(buffer) - keep]))
                self._buffer = buffer[len(buffer) - keep:]
                return False
            if start:
                events.append(Text(buffer[:start]))
            self._buffer, self._state = buffer[start + len(TOOL_CALL_OPEN):], "opened"
            return True
        if self._state == "opened":
            body = buffer.lstrip(BLANKS)
            if not body:
                return False
            if body[0] in "{[":
                self._state = "call"
                return True
            # prose that mentions the tag: the tag and the blanks after it are text, the rest is looked at again
            blanks = len(buffer) - len(body)
            events.append(Text(TOOL_CALL_OPEN + buffer[:blanks]))
            self._buffer, self._state = body, "text"
            return True
        # inside a call: the first close tag that is not inside a JSON string ends it
        while True:
            end = buffer.find(TOOL_CALL_CLOSE, self._scan)
            if end < 0:
                self._scan = max(self._scan, len(buffer) - len(TOOL_CALL_CLOSE) + 1)
                return False
            self._scan = end + 1
            if not _inside_json_string(buffer[:end]):
                break
        body = buffer[:end]
        self._buffer, self._state, self._scan = buffer[end + len(TOOL_CALL_CLOSE):], "text", 0
        parsed = parse_call(body)
        if isinstance(parsed, str):
            events.append(Malformed(TOOL_CALL_OPEN + body + TOOL_CALL_CLOSE, parsed))
        else:
            index = self._calls
            self._calls += 1
            events.extend((CallStart(index, self._new_id(), parsed[0]), CallArguments(index, parsed[1]),
                           CallEnd(index)))
        return True


def _merged(events: list[Event]) -> list[Event]:
    """Adjacent Text events joined."""
    out: list[Event] = []
    for event in events:
        last = out[-1] if out else None
        if isinstance(event, Text) and isinstance(last, Text):
            out[-1] = Text(last.text + event.text)
        else:
            out.append(event)
    return out


def parse_text(text: str, id_factory: Callable[[], str] = new_call_id) -> list[Event]:
    """Every event of a whole answer (the non-streaming case)."""
    parser = ToolCallParser(id_factory)
    return _merged([*parser.feed(text), *parser.finish()])


def to_openai_deltas(events: Iterable[Event]) -> list[dict[str, Any]]:
    """OpenAI ``delta.tool_calls`` entries for the call events (other events are skipped), one entry per call index.

    A :class:`CallStart` gives ``{"index", "id", "type": "function", "function": {"name", "arguments": ""}}``; a
    :class:`CallArguments` adds its fragment to the entry of its index when these events have one, else it is its own
    ``{"index", "function": {"arguments": fragment}}``. One delta never names an index twice: clients merge tool-call
    pieces across chunks by index, not inside one chunk (LangChain's ``AIMessageChunk`` would show two calls, one with
    the name and no arguments, one with the arguments and no name).
    """
    deltas: list[dict[str, Any]] = []
    by_index: dict[int, dict[str, Any]] = {}
    for event in events:
        if isinstance(event, CallStart):
            entry = {"index": event.index, "id": event.id, "type": "function",
                     "function": {"name": event.name, "arguments": ""}}
        elif isinstance(event, CallArguments):
            if event.index in by_index:
                by_index[event.index]["function"]["arguments"] += event.fragment
                continue
            entry = {"index": event.index, "function": {"arguments": event.fragment}}
        else:
            continue
        by_index[event.index] = entry
        deltas.append(entry)
    return deltas


def tool_calls_of(events: Iterable[Event]) -> list[dict[str, Any]]:
    """The whole calls of a finished answer, as an OpenAI ``message.tool_calls`` list."""
    calls: dict[int, dict[str, Any]] = {}
    for event in events:
        if isinstance(event, CallStart):
            calls[event.index] = {"id": event.id, "type": "function",
                                  "function": {"name": event.name, "arguments": ""}}
        elif isinstance(event, CallArguments):
            calls[event.index]["function"]["arguments"] += event.fragment
    return [calls[index] for index in sorted(calls)]
