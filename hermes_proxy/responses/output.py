"""The chat pipeline's pieces -> Responses output items, and the streaming events that build them, in the order the
OpenAI SDK's stream accumulator expects.

One :class:`OutputBuilder` serves both faces: a stream writes the events :meth:`OutputBuilder.feed` returns as they
come, a plain response ignores them (``events=False`` makes none) and reads :attr:`OutputBuilder.output`.

- Hermes' reasoning is a ``reasoning`` item whose one summary part carries the thinking text
  (``response.reasoning_summary_part.added``, ``response.reasoning_summary_text.delta`` ... ``done``);
- the answer is a ``message`` item with one ``output_text`` part (``response.content_part.added``,
  ``response.output_text.delta`` ... ``done``); whitespace alone (between the reasoning and a tool call) makes no
  message, and a JSON answer loses the Markdown fence Hermes likes to put around it;
- each tool call is a ``function_call`` item (``response.function_call_arguments.delta`` ... ``done``).

An item is closed (``response.output_item.done``) when the next one opens or the answer ends; when the answer was cut
at ``max_output_tokens`` the last item is ``incomplete``. Every event carries its ``sequence_number``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from hermes_proxy.pipeline import Outcome, Piece
from hermes_proxy.responses.request import ResponsesRequest
from hermes_proxy.tools.structured import strip_fence


def new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(12).hex()}"


def _summary(text: str) -> dict[str, str]:
    return {"type": "summary_text", "text": text}


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class OutputBuilder:
    def __init__(self, *, json_format: bool = False, events: bool = True) -> None:
        self.output: list[dict[str, Any]] = []
        self.finish_reason: str | None = None
        self._json_format = json_format
        self._events = events
        self._pending: list[dict[str, Any]] = []
        self._sequence = 0
        self._open: dict[str, Any] | None = None
        self._index = -1  # of the open item in output
        self._parts: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self._blank = ""

    # --- events ------------------------------------------------------------------------------------------------------

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        """One event, numbered: ``{"type": kind, "sequence_number": n, **fields}``."""
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _emit(self, kind: str, **fields: Any) -> None:
        if self._events:
            self._pending.append(self.event(kind, **fields))

    def _take(self) -> list[dict[str, Any]]:
        events, self._pending = self._pending, []
        return events

    # --- feeding -----------------------------------------------------------------------------------------------------

    def feed(self, piece: Piece) -> list[dict[str, Any]]:
        """Take one piece of the answer; the events it makes."""
        delta = piece.delta
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning:
            self._text("reasoning", reasoning)
        content = delta.get("content")
        if content:
            self._answer_text(content)
        for fragment in piece.tool_calls or ():
            self._tool_call(fragment)
        if piece.finish_reason:
            self.finish_reason = piece.finish_reason
        return self._take()

    def close(self) -> list[dict[str, Any]]:
        """The answer is over: close the open item (``incomplete`` when the answer was cut at its token limit)."""
        self._close("incomplete" if self.finish_reason == "length" else "completed")
        return self._take()

    @property
    def incomplete(self) -> bool:
        return self.finish_reason == "length"

    def _answer_text(self, text: str) -> None:
        if self._open is None or self._open["type"] != "message":
            text = self._blank + text
            if not text.strip():  # whitespace between items makes no message (yet)
                self._blank = text
                return
            self._blank = ""
            text = text.lstrip()
        self._text("message", text)

    def _text(self, kind: str, text: str) -> None:
        if self._open is None or self._open["type"] != kind:
            self._start(kind)
        item = self._open
        assert item is not None
        self._parts.append(text)
        where = {"item_id": item["id"], "output_index": self._index}
        if kind == "reasoning":
            self._emit("response.reasoning_summary_text.delta", **where, summary_index=0, delta=text)
        else:
            self._emit("response.output_text.delta", **where, content_index=0, delta=text, logprobs=[])

    def _tool_call(self, fragment: dict[str, Any]) -> None:
        index = fragment.get("index")
        if not isinstance(index, int):
            index = len(self._calls)
        function = fragment.get("function") or {}
        item = self._calls.get(index)
        if item is None:
            item = {"id": new_id("fc"), "type": "function_call", "call_id": fragment.get("id") or new_id("call"),
                    "name": function.get("name") or "", "arguments": "", "status": "in_progress"}
            self._calls[index] = item
            self._start("function_call", item)
        elif function.get("name"):
            item["name"] += function["name"]
        arguments = function.get("arguments")
        if not isinstance(arguments, str) or not arguments:
            return
        if item is self._open:
            self._parts.append(arguments)
            self._emit("response.function_call_arguments.delta", item_id=item["id"],
                       output_index=self._index, delta=arguments)
        else:  # a late fragment of a call already closed (hosts do not interleave calls; kept, not lost)
            item["arguments"] += arguments

    # --- items -------------------------------------------------------------------------------------------------------

    def _start(self, kind: str, item: dict[str, Any] | None = None) -> None:
        self._close("completed")
        self._blank = ""
        if item is None:
            item = ({"id": new_id("rs"), "type": "reasoning", "summary": [], "status": "in_progress"}
                    if kind == "reasoning" else
                    {"id": new_id("msg"), "type": "message", "role": "assistant", "status": "in_progress",
                     "content": []})
        self.output.append(item)
        self._open = item
        self._parts = []
        self._index = index = len(self.output) - 1
        self._emit("response.output_item.added", output_index=index, item=dict(item))
        where = {"item_id": item["id"], "output_index": index}
        if kind == "reasoning":
            self._emit("response.reasoning_summary_part.added", **where, summary_index=0, part=_summary(""))
        elif kind == "message":
            self._emit("response.content_part.added", **where, content_index=0, part=_output_text(""))

    def _close(self, status: str) -> None:
        item, self._open = self._open, None
        if item is None:
            return
        text = "".join(self._parts)
        index = self._index
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "reasoning":
            item["summary"] = [_summary(text)]
            self._emit("response.reasoning_summary_text.done", **where, summary_index=0, text=text)
            self._emit("response.reasoning_summary_part.done", **where, summary_index=0, part=_summary(text))
        elif item["type"] == "message":
            if self._json_format:
                text = strip_fence(text)  # Hermes likes ```json fences; the client asked for JSON
            part = _output_text(text)
            item["content"] = [part]
            self._emit("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
            self._emit("response.content_part.done", **where, content_index=0, part=part)
        else:
            item["arguments"] = text + item["arguments"]
            self._emit("response.function_call_arguments.done", **where, arguments=item["arguments"])
        item["status"] = status
        self._emit("response.output_item.done", output_index=index, item=item)


# --- the Response object -----------------------------------------------------------------------------------------------


def usage_object(outcome: Outcome) -> dict[str, Any]:
    """``usage`` in the Responses shape, with ``cost`` (USD) and ``estimated`` as on chat completions."""
    usage = outcome.usage
    body: dict[str, Any] = {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_prompt_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }
    if outcome.cost_usd is not None:
        body["cost"] = float(outcome.cost_usd)
    if usage.estimated:
        body["estimated"] = True
    return body


def response_object(request: ResponsesRequest, *, response_id: str, created_at: float, model: str, status: str,
                    output: list[dict[str, Any]], usage: dict[str, Any] | None = None,
                    error: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``Response`` object: the request's options echoed, the output, usage once known."""
    body = request.body
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "completed_at": time.time() if status in ("completed", "incomplete", "failed") else None,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request.instructions,
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": request.metadata,
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True) is not False,
        "previous_response_id": request.previous_response_id,
        "reasoning": {"effort": (request.reasoning or {}).get("effort"),
                      "summary": (request.reasoning or {}).get("summary")},
        "store": request.store,
        "temperature": body.get("temperature"),
        "text": {"format": request.text_format or {"type": "text"}},
        "tool_choice": request.tool_choice if request.tool_choice is not None else "auto",
        "tools": request.tools,
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "usage": usage,
        "user": body.get("user"),
    }


def failure(message: str) -> dict[str, Any]:
    """``Response.error`` of a failed response (OpenAI's codes are few: a proxy-side failure is a server_error)."""
    return {"code": "server_error", "message": message}
