"""Server-Sent Events, both directions: an incremental decoder for upstream streams and encoders for the client side.

The decoder follows the WHATWG "event stream" interpretation rules
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):

- the byte stream is UTF-8 (a leading BOM is dropped; invalid bytes become U+FFFD), decoded incrementally, so a
  multi-byte character split across network chunks is decoded once it is complete;
- lines end with CRLF, LF or a lone CR, wherever the chunk boundaries fall (a CR ending one chunk and an LF starting the
  next are one line ending);
- a line starting with ``:`` is a comment (OpenRouter's ``: OPENROUTER PROCESSING`` keep-alives) and is ignored;
- ``field:value`` (one space after the colon is removed, if present), or a bare ``field`` with an empty value;
  ``data`` lines accumulate and are joined with ``\\n``; ``event`` and ``id`` set the event's type and id (an ``id``
  containing NUL is ignored); ``retry`` and unknown fields are ignored;
- a blank line dispatches the event; an event without any ``data`` line is not dispatched (spec), but ``data:`` with an
  empty value is (its data is ``""``).

Two deliberate departures from the browser algorithm, both what a proxy wants: :attr:`SSEEvent.id` is the id given in
*that* event's block (the spec carries the last id over to later events), and :meth:`SSEDecoder.finish` dispatches a
final event that was not terminated by a blank line (the spec discards it) - upstreams that drop the connection right
after the last ``data:`` line still deliver it.

Cost is linear in the input: each feed only scans the new text for line endings; a line split over many chunks is
joined once, when its ending arrives.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

# A JSONEncoder holds only its (never changed) options: a constant, not state.
_WIDE_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

__all__ = ["DONE", "SSEDecoder", "SSEEvent", "encode_comment", "encode_event", "encode_json", "encode_sse"]

#: The OpenAI end-of-stream marker.
DONE: bytes = b"data: [DONE]\n\n"
#: an SSE comment: keeps a quiet stream (hidden reasoning) open through proxies and load balancers
KEEPALIVE: bytes = b": keep-alive\n\n"


@dataclass(slots=True)
class SSEEvent:
    """One dispatched event. ``event`` is ``None`` for the default ("message") type; ``id`` as explained above."""

    data: str
    event: str | None = None
    id: str | None = None


class SSEDecoder:
    """Incremental SSE parser: ``feed`` network chunks as they come, ``finish`` at end of stream."""

    __slots__ = ("_cr", "_data", "_decoder", "_event", "_id", "_partial")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._partial: list[str] = []  # pieces of the current, unterminated line (no line ending inside)
        self._cr = False  # the last text ended with CR: an LF starting the next text belongs to that line ending
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode one chunk of bytes; returns the events it completed (often none or one)."""
        text = self._decoder.decode(chunk)
        if not text:
            return []
        return self._feed_text(text)

    def finish(self) -> list[SSEEvent]:
        """End of stream: decode what is left, take an unterminated last line, dispatch a pending event. Resets."""
        text = self._decoder.decode(b"", final=True)
        events = self._feed_text(text) if text else []
        if self._partial:
            line = "".join(self._partial)
            self._partial = []
            self._line(line, events)
        self._dispatch(events)
        self._reset()  # ready for another stream
        return events

    # --- internals ----------------------------------------------------------------------------------------------

    def _feed_text(self, text: str) -> list[SSEEvent]:
        if self._cr:
            self._cr = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        has_cr = "\r" in text
        if not has_cr and "\n" not in text:
            self._partial.append(text)
            return []
        if self._partial:
            self._partial.append(text)
            text = "".join(self._partial)
            self._partial = []
        if has_cr:
            self._cr = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        tail = lines.pop()
        if tail:
            self._partial.append(tail)
        events: list[SSEEvent] = []
        for line in lines:
            self._line(line, events)
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            self._dispatch(events)
            return
        if line.startswith("data:"):  # nearly every line of a completion stream: the general parse below, shortened
            self._data.append(line[6:] if line[5:6] == " " else line[5:])
            return
        colon = line.find(":")
        if colon == 0:
            return  # comment
        if colon < 0:
            name, value = line, ""
        else:
            name = line[:colon]
            value = line[colon + 1 :]
            if value[:1] == " ":
                value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        # "retry" and unknown fields: ignored

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._data:
            data = self._data[0] if len(self._data) == 1 else "\n".join(self._data)
            events.append(SSEEvent(data, self._event or None, self._id))
            self._data = []
        self._event = None
        self._id = None


# --- encoders -----------------------------------------------------------------------------------------------------


def encode_json(value: Any) -> bytes:
    """Compact JSON, non-ASCII kept as UTF-8: every body and event the proxy sends. orjson encodes a chunk's delta in
    a tenth of ``json.dumps``'s time; NaN and infinities, which JSON lacks, come out as null. What it refuses (an
    integer past 64 bits, which a client may send and we pass on) goes through ``json``."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return _WIDE_JSON.encode(value).encode()


def encode_event(obj: Mapping[str, Any]) -> bytes:
    """``data: <compact JSON>\\n\\n`` in UTF-8. JSON escapes newlines, so one ``data:`` line always suffices."""
    return b"data: " + encode_json(obj if isinstance(obj, dict) else dict(obj)) + b"\n\n"


def encode_comment(text: str = "") -> bytes:
    """A comment (keep-alive) block: ``: text\\n\\n``; every line of a multi-line text becomes a comment line."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return ("".join(f": {line}\n" if line else ":\n" for line in lines) + "\n").encode()


def encode_sse(event: SSEEvent) -> bytes:
    """Any event, with its data spread over as many ``data:`` lines as it has lines.

    SSE cannot carry a CR inside data: CRLF and lone CR in ``event.data`` arrive as LF. ``event`` and ``id`` must be
    single lines (``ValueError`` otherwise).
    """
    out: list[str] = []
    if event.event is not None:
        _check_single_line("event", event.event)
        out.append(f"event: {event.event}\n")
    if event.id is not None:
        _check_single_line("id", event.id)
        out.append(f"id: {event.id}\n")
    data = event.data
    if "\r" in data:
        data = data.replace("\r\n", "\n").replace("\r", "\n")
    for line in data.split("\n"):
        out.append(f"data: {line}\n")
    out.append("\n")
    return "".join(out).encode()


def _check_single_line(field: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise ValueError(f"SSE {field} must be a single line; got {value!r}")
