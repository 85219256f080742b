"""The streaming <tool_call> parser gives the same calls and the same text at every split of its input, and never
drops what the model wrote."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hermes_proxy.tools.parser import (
    CallArguments,
    CallEnd,
    CallStart,
    Event,
    Malformed,
    Text,
    ToolCallParser,
    new_call_id,
    parse_text,
    to_openai_deltas,
    tool_calls_of,
)


def ids() -> Any:
    counter = itertools.count()
    return lambda: f"call_{next(counter)}"


def run(chunks: list[str]) -> list[Event]:
    parser = ToolCallParser(ids())
    events: list[Event] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.finish())
    return events


def summary(events: list[Event]) -> tuple[str, list[Any]]:
    """(all text, in order; the non-text events) - the same whatever the chunking."""
    text = "".join(e.text for e in events if isinstance(e, Text))
    return text, [e for e in events if not isinstance(e, Text)]


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts})
    return [text[a:b] for a, b in itertools.pairwise([0, *points, len(text)])]


def raw_of(events: list[Event]) -> str:
    """The model's text put back together: text, calls re-rendered, malformed blocks as written."""
    out = []
    for event in events:
        if isinstance(event, Text):
            out.append(event.text)
        elif isinstance(event, Malformed):
            out.append(event.raw_text)
    return "".join(out)


# --- strategies: prose (which may mention the tag), well-formed calls, malformed blocks ------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
names = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True)
# prose may mention the tag, but never so that it opens a call: after it, the first non-blank is not "{", "[", the end
prose = st.lists(st.sampled_from([*"ab <>/_{}\"\n\t", "<tool_call", "</tool_call>", "é", "🎉",
                                   "<tool_call> tag", "<tool_call>"]), max_size=20).map("".join).filter(
    lambda s: not re.search(r"<tool_call>\s*(\{|\[|$)", s))


@st.composite
def call_text(draw: Any) -> tuple[str, str, str]:
    name, args = draw(names), draw(arguments)
    as_string = draw(st.booleans())
    args_json = json.dumps(json.dumps(args)) if as_string else json.dumps(args, ensure_ascii=draw(st.booleans()))
    blank = draw(st.sampled_from(["", "\n", " ", "\n  "]))
    body = '{"name": ' + json.dumps(name) + ', "arguments": ' + args_json + "}"
    expected_args = json.dumps(args) if as_string else json.dumps(args, ensure_ascii=False)
    return f"<tool_call>{blank}{body}{blank}</tool_call>", name, expected_args


@st.composite
def answers(draw: Any) -> tuple[str, list[tuple[str, str]], str]:
    """An answer: text before, calls with blanks (and sometimes prose) between them; the calls expected, and the
    answer without its calls."""
    parts: list[str] = [draw(prose)]
    outside = parts[:]
    calls: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(0, 3))):
        text, name, args = draw(call_text())
        parts.append(text)
        calls.append((name, args))
        between = draw(st.sampled_from(["", "\n", "\n\n", " "]) | prose)
        parts.append(between)
        outside.append(between)
    return "".join(parts), calls, "".join(outside)


Answer = tuple[str, list[tuple[str, str]], str]


def calls_of(events: list[Event]) -> list[tuple[str, str]]:
    return [(c["function"]["name"], c["function"]["arguments"]) for c in tool_calls_of(events)]


@given(answers(), st.lists(st.integers(0, 400), max_size=12))
def test_any_chunking_gives_the_same_text_and_calls(answer: Answer, cuts: list[int]) -> None:
    text, expected, outside = answer
    whole = run([text])
    assert summary(run(chunked(text, cuts))) == summary(whole)
    assert calls_of(whole) == expected
    assert raw_of(whole) == outside  # the text outside the calls, exactly
    assert not [e for e in whole if isinstance(e, Malformed)]


@given(answers())
def test_every_single_split_and_one_character_at_a_time(answer: Answer) -> None:
    text, _, _ = answer
    whole = summary(run([text]))
    for cut in range(len(text) + 1):
        assert summary(run([text[:cut], text[cut:]])) == whole
    assert summary(run(list(text))) == whole


malformed_bodies = st.sampled_from([
    "{bad}", '{"name": 3, "arguments": {}}', '{"arguments": {}}', '["get", {}]', '{"name": "f", "arguments": 3}',
    '{"name": "f", "arguments": {}} trailing', '{"name": "f", "arguments": {"a": 1}', "{", '{"name": ""}',
])


@given(prose, malformed_bodies, prose, st.lists(st.integers(0, 200), max_size=8))
def test_malformed_blocks_are_returned_whole_never_dropped(before: str, body: str, after: str,
                                                           cuts: list[int]) -> None:
    text = f"{before}<tool_call>{body}</tool_call>{after}"
    for events in (run([text]), run(chunked(text, cuts))):
        bad = [e for e in events if isinstance(e, Malformed)]
        assert bad and bad[0].raw_text == f"<tool_call>{body}</tool_call>" and bad[0].reason
        assert raw_of(events) == text
        assert not any(isinstance(e, CallStart) for e in events)


@given(prose, st.sampled_from(["", "\n", '{"name": "f", "arguments": {"a": "b'  , '{"name": "f"}']),
       st.lists(st.integers(0, 100), max_size=6))
def test_a_block_never_closed_is_malformed_with_all_its_text(before: str, tail: str, cuts: list[int]) -> None:
    text = f"{before}<tool_call>{tail}"
    events = run(chunked(text, cuts))
    assert isinstance(events[-1], Malformed) and events[-1].raw_text == f"<tool_call>{tail}"
    assert "never closed" in events[-1].reason
    assert raw_of(events) == text


def test_several_calls_with_text_before_and_between() -> None:
    text = ('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
            '<tool_call>\n{"name": "get_time", "arguments": "{\\"tz\\": \\"CET\\"}"}\n</tool_call>')
    events = parse_text(text, ids())
    assert events == [
        Text("Let me check.\n"),
        CallStart(0, "call_0", "get_weather"), CallArguments(0, '{"city": "Paris"}'), CallEnd(0),
        Text("\n"),
        CallStart(1, "call_1", "get_time"), CallArguments(1, '{"tz": "CET"}'), CallEnd(1),
    ]
    assert to_openai_deltas(events) == [  # one entry per index: clients merge by index across chunks only
        {"index": 0, "id": "call_0", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"index": 1, "id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}},
    ]
    assert to_openai_deltas([CallArguments(2, '{"a"'), CallArguments(2, ": 1}")]) == [
        {"index": 2, "function": {"arguments": '{"a": 1}'}}]


def test_the_tag_in_prose_is_text() -> None:
    text = "To call a tool, use the <tool_call> tag, then </tool_call>. Done"
    assert parse_text(text) == [Text(text)]
    assert parse_text("<tool_call>\nget_weather(city='Paris')\n</tool_call>") == [
        Text("<tool_call>\nget_weather(city='Paris')\n</tool_call>")]


def test_a_closing_tag_inside_an_argument_string_does_not_close_the_call() -> None:
    text = '<tool_call>{"name": "echo", "arguments": {"text": "say </tool_call> now"}}</tool_call>'
    assert calls_of(parse_text(text)) == [("echo", '{"text": "say </tool_call> now"}')]


def test_missing_arguments_means_none() -> None:
    assert calls_of(parse_text('<tool_call>{"name": "now"}</tool_call>')) == [("now", "{}")]


def test_text_is_released_as_soon_as_it_cannot_start_a_tag() -> None:
    parser = ToolCallParser(ids())
    assert parser.feed("Hello <tool") == [Text("Hello ")]
    assert parser.feed("box>") == [Text("<toolbox>")]
    assert parser.feed("<tool_call>  ") == []
    assert parser.feed('{"name": "f", "arguments": {}}</tool_') == []
    assert parser.feed("call>!") == [CallStart(0, "call_0", "f"), CallArguments(0, "{}"), CallEnd(0), Text("!")]
    assert parser.finish() == []
    assert parser.calls == 1


def test_call_ids_look_like_openai_ids() -> None:
    made = {new_call_id() for _ in range(50)}
    assert len(made) == 50
    assert all(i.startswith("call_") and len(i) == 29 and i[5:].replace("-", "").replace("_", "").isalnum()
               for i in made)
