"""SSE decoding and encoding: any split of the byte stream decodes to the same events."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hermes_proxy.sse import DONE, SSEDecoder, SSEEvent, encode_comment, encode_event, encode_sse

# --- helpers ------------------------------------------------------------------------------------------------------


def decode_chunks(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.finish())
    return events


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in pairwise(points)]


def normalized(event: SSEEvent) -> SSEEvent:
    """What survives SSE: CR in data arrives as LF; an empty event type is the default type."""
    data = event.data.replace("\r\n", "\n").replace("\r", "\n")
    return SSEEvent(data, event.event or None, event.id)


_chars = st.characters(exclude_categories=("Cs",))
_line_chars = st.characters(exclude_categories=("Cs",), exclude_characters="\r\n")
_data = st.text(_chars, max_size=40) | st.lists(
    st.sampled_from(["", "\n", "\r\n", "\r", ":", " ", "data: x", "é", "日本語", "🙂", "[DONE]", "\x00", "\u2028"]),
    max_size=8).map("".join)
_events = st.builds(
    SSEEvent,
    data=_data,
    event=st.none() | st.text(_line_chars, max_size=10),
    id=st.none() | st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r\n\x00"), max_size=6),
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(_chars),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(_chars, max_size=8), children,
                                                                        max_size=4),
    max_leaves=12,
)


# --- property tests -----------------------------------------------------------------------------------------------


@given(events=st.lists(_events, max_size=8), cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_any_split_roundtrips(events: list[SSEEvent], cuts: list[int]) -> None:
    data = b"".join(encode_sse(e) for e in events)
    assert decode_chunks(split_at(data, cuts)) == [normalized(e) for e in events]


@given(events=st.lists(_events, max_size=6), cuts=st.lists(st.integers(min_value=0), max_size=12),
       ending=st.sampled_from([b"\r\n", b"\r"]))
def test_crlf_and_cr_line_endings(events: list[SSEEvent], cuts: list[int], ending: bytes) -> None:
    data = b"".join(encode_sse(e) for e in events).replace(b"\n", ending)
    assert decode_chunks(split_at(data, cuts)) == [normalized(e) for e in events]


@given(objs=st.lists(st.dictionaries(st.text(_chars, max_size=8), _json, max_size=5), max_size=6),
       cuts=st.lists(st.integers(min_value=0), max_size=10))
def test_encode_event_roundtrips_json(objs: list[dict[str, Any]], cuts: list[int]) -> None:
    data = b"".join(encode_event(o) for o in objs) + DONE
    events = decode_chunks(split_at(data, cuts))
    assert [json.loads(e.data) for e in events[:-1]] == objs
    assert events[-1].data == "[DONE]"


@given(events=st.lists(_events, min_size=1, max_size=5), cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_missing_final_blank_line_is_flushed(events: list[SSEEvent], cuts: list[int]) -> None:
    data = b"".join(encode_sse(e) for e in events)
    assert data.endswith(b"\n\n")
    for cut in (data[:-1], data[:-2]):  # no blank line at all; last line unterminated too
        assert decode_chunks(split_at(cut, cuts)) == [normalized(e) for e in events]


# --- a recorded-style stream, split at every offset ---------------------------------------------------------------

RECORDED = (
    b": OPENROUTER PROCESSING\n\n"
    b'data: {"id":"gen-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant",'
    b'"content":"","reasoning":"Let me think \xe2\x80\x94 \xf0\x9f\xa4\x94"},"finish_reason":null}]}\n\n'
    b": OPENROUTER PROCESSING\r\n\r\n"
    b'data:{"choices":[{"index":0,"delta":{"content":"<think>\\n\xe6\x97\xa5\xe6\x9c\xac"},"finish_reason":null}]}\r\n'
    b"\r\n"
    b'data: {"choices":[{"index":0,"delta":{"content":"\\n</think>\\n\\nHi \xc3\xa9"},"finish_reason":"stop"}]}\r\r'
    b"event: ping\nid: 7\nretry: 1000\nunknown: field\ndata: multi\ndata: line\n\n"
    b'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"cost":0.0001}}\n\n'
    b"data: [DONE]\n\n"
)
RECORDED_EVENTS = [
    SSEEvent('{"id":"gen-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant",'
             '"content":"","reasoning":"Let me think — 🤔"},"finish_reason":null}]}'),
    SSEEvent('{"choices":[{"index":0,"delta":{"content":"<think>\\n日本"},"finish_reason":null}]}'),
    SSEEvent('{"choices":[{"index":0,"delta":{"content":"\\n</think>\\n\\nHi é"},"finish_reason":"stop"}]}'),
    SSEEvent("multi\nline", event="ping", id="7"),
    SSEEvent('{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"cost":0.0001}}'),
    SSEEvent("[DONE]"),
]


def test_recorded_stream_whole() -> None:
    assert decode_chunks([RECORDED]) == RECORDED_EVENTS


def test_recorded_stream_every_split_offset() -> None:
    for i in range(len(RECORDED) + 1):
        assert decode_chunks([RECORDED[:i], RECORDED[i:]]) == RECORDED_EVENTS, i


def test_recorded_stream_byte_by_byte() -> None:
    assert decode_chunks([RECORDED[i : i + 1] for i in range(len(RECORDED))]) == RECORDED_EVENTS


def test_recorded_stream_every_pair_of_offsets_in_the_tricky_part() -> None:
    # the CRLF / lone-CR / multi-byte region, split in three at every pair of offsets
    start = RECORDED.index(b": OPENROUTER PROCESSING\r\n")
    end = RECORDED.index(b"event: ping")
    for i in range(start, end):
        for j in range(i, end, 3):
            assert decode_chunks([RECORDED[:i], RECORDED[i:j], RECORDED[j:]]) == RECORDED_EVENTS, (i, j)


def test_events_come_out_as_soon_as_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\n") == [SSEEvent("a")]
    assert decoder.feed(b"data: b\n\ndata: c") == [SSEEvent("b")]
    assert decoder.feed(b"\r") == []
    assert decoder.feed(b"\r") == [SSEEvent("c")]  # CR CR: end of line, then a blank line
    assert decoder.feed(b"\n") == []  # this LF completes the CRLF begun by the last CR: no extra line
    assert decoder.finish() == []


# --- spec details -------------------------------------------------------------------------------------------------


def test_field_parsing_details() -> None:
    stream = (
        b"data\n\n"  # bare field name: empty value, still dispatched
        b"data:no-space\n\n"
        b"data:  two spaces\n\n"  # only one space is removed
        b"event: only-event\n\n"  # no data: not dispatched
        b"id: a\x00b\ndata: x\n\n"  # id with NUL ignored
        b"event:\ndata: y\n\n"  # empty event type: default
        b": comment\ndata: z\n: another\n\n"
        b"DATA: case-sensitive\nfoo\ndata: w\n\n"
    )
    assert decode_chunks([stream]) == [
        SSEEvent(""),
        SSEEvent("no-space"),
        SSEEvent(" two spaces"),
        SSEEvent("x"),
        SSEEvent("y"),
        SSEEvent("z"),
        SSEEvent("w"),
    ]


def test_id_is_per_event() -> None:
    assert decode_chunks([b"id: 1\ndata: a\n\ndata: b\n\n"]) == [SSEEvent("a", id="1"), SSEEvent("b")]


def test_bom_and_invalid_utf8() -> None:
    assert decode_chunks([b"\xef\xbb", b"\xbfdata: a\n\n"]) == [SSEEvent("a")]
    assert decode_chunks([b"data: \xff\xfe\n\n"]) == [SSEEvent("\ufffd\ufffd")]
    # a BOM later in the stream is data
    assert decode_chunks([b"data: \xef\xbb\xbfa\n\n"]) == [SSEEvent("\ufeffa")]


def test_cr_at_chunk_end_then_lf() -> None:
    assert decode_chunks([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [SSEEvent("a\nb")]


def test_unterminated_last_line_at_eof() -> None:
    assert decode_chunks([b"data: {\"a\":1}"]) == [SSEEvent('{"a":1}')]
    assert decode_chunks([b"data: a\ndata: b"]) == [SSEEvent("a\nb")]
    assert decode_chunks([b": just a comment"]) == []
    assert decode_chunks([b"data: x\xe2\x82"]) == [SSEEvent("x\ufffd")]  # truncated character at EOF


def test_decoder_is_reusable_after_finish() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a")
    assert decoder.finish() == [SSEEvent("a")]
    assert decoder.feed(b"data: b\n\n") == [SSEEvent("b")]


def test_long_line_in_tiny_chunks_is_linear() -> None:
    payload = "x" * 200_000
    decoder = SSEDecoder()
    data = f"data: {payload}\n\n".encode()
    events: list[SSEEvent] = []
    for i in range(0, len(data), 7):
        events.extend(decoder.feed(data[i : i + 7]))
    assert events == [SSEEvent(payload)]
    assert len(decoder._partial) == 0


# --- encoders -----------------------------------------------------------------------------------------------------


def test_encode_event_is_compact_utf8() -> None:
    assert encode_event({"a": "é\n", "b": [1, 2]}) == 'data: {"a":"é\\n","b":[1,2]}\n\n'.encode()
    assert DONE == b"data: [DONE]\n\n"


def test_encode_comment() -> None:
    assert encode_comment("keep-alive") == b": keep-alive\n\n"
    assert encode_comment("") == b":\n\n"
    assert encode_comment("a\nb") == b": a\n: b\n\n"
    assert decode_chunks([encode_comment("x\ny"), encode_event({"k": 1})]) == [SSEEvent('{"k":1}')]


def test_encode_sse_rejects_multiline_fields() -> None:
    import pytest

    with pytest.raises(ValueError, match="single line"):
        encode_sse(SSEEvent("x", event="a\nb"))
    with pytest.raises(ValueError, match="single line"):
        encode_sse(SSEEvent("x", id="1\r"))
