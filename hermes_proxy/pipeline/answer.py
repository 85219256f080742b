"""Stage 5, the answer: upstream chunks -> shaped pieces for the client.

Reasoning is read from ``delta.reasoning_content`` / ``delta.reasoning`` and from ``<think>`` in the text (the
dialect's splitter), shaped as the client asked (parsed, raw, hidden), and metered per upstream call. ``max_tokens``
is a ceiling on what is relayed, whatever the upstream does with it: past it the answer ends with
``finish_reason: "length"`` and the upstream is hung up on. A reasoning budget the host does not enforce is enforced
here: the reasoning is cut at the budget and the dialect's follow-up request gets the answer. While nothing can be
sent (hidden reasoning), keep-alive pieces keep the connection open.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from hermes_proxy.errors import HermesError, UpstreamError, UpstreamStreamError
from hermes_proxy.pipeline.connect import Connection, close_stream
from hermes_proxy.pipeline.outcome import RunningCount, UsageMeter
from hermes_proxy.pipeline.plan import Plan
from hermes_proxy.pipeline.tool_calls import AnswerChecks, RenderedToolCalls, check_answer
from hermes_proxy.pipeline.types import Piece
from hermes_proxy.reasoning import OutputShaper, ThinkSplitter
from hermes_proxy.tokens import TokenCounter
from hermes_proxy.upstreams.base import Chunk

#: with nothing to send for this long (hidden reasoning), a keep-alive piece goes out
KEEPALIVE_S = 10.0


class Answer:
    """One answer being relayed; iterate :meth:`pieces` once."""

    def __init__(self, plan: Plan, connection: Connection, counter: TokenCounter, meter: UsageMeter,
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self.plan = plan
        self.connection = connection
        self.dialect = connection.upstream.dialect
        self.counter = counter
        self.meter = meter
        self.shaper = OutputShaper(plan.decision.format)
        self.finish_reason: str | None = None
        self.error: HermesError | None = None
        self.first_piece_at: float | None = None
        body = plan.request.body
        #: tools went as Hermes' own text: the calls come back as <tool_call> text to parse
        self._rendered_calls = (RenderedToolCalls() if body.get("tools") and body.get("tool_choice") != "none"
                                and not self.dialect.native_tools else None)
        self._native_call_names: list[str] = []
        #: filled in when the answer is complete
        self.checks: AnswerChecks | None = None
        self._clock = clock
        self._last_sent = clock()
        whole = None if plan.request.stream or plan.decision.max_reasoning_tokens is not None \
            else _content_of(connection.pending[0])
        self._splitter = self.dialect.splitter(plan.decision, whole)
        #: the reasoning budget the proxy enforces (None when there is none, or the host enforces it)
        self._cap = None if self.dialect.enforces_reasoning_budget(connection.route) \
            else plan.decision.max_reasoning_tokens
        self._reasoning_tokens = 0
        #: what was relayed so far (reasoning and answer): characters, and tokens once they could reach max_tokens
        self._relayed_chars = 0
        self._relayed: RunningCount | None = None
        self.capped = False
        meter.new_call(plan.prompt_tokens)

    async def pieces(self) -> AsyncIterator[Piece]:
        cap = self._cap
        stream = self.connection.rest
        try:
            async for chunk in self._chunks(self.connection.pending, stream):
                piece = self._step(chunk)
                if piece is not None:
                    yield piece
                if self.capped:
                    return
                if cap is not None and self.finish_reason is None and not self.shaper.has_content \
                        and self._reasoning_tokens >= cap:
                    await close_stream(stream)
                    async for extra in self._answer_after_budget():
                        yield extra
                    return
            tail = self._flush()
            if tail is not None:
                yield tail
        except UpstreamStreamError as exc:
            self.error = exc
            tail = self._flush()
            if tail is not None:
                yield tail
            raise
        finally:
            await close_stream(stream)
            self.checks = check_answer(self.plan.request.body, self.shaper.content_text, self.call_names)
            if self._rendered_calls is not None:
                self.checks.notes[:0] = self._rendered_calls.notes

    @property
    def call_names(self) -> list[str]:
        """The functions the answer called."""
        rendered = self._rendered_calls.names if self._rendered_calls is not None else []
        return [*rendered, *self._native_call_names]

    @staticmethod
    async def _chunks(pending: list[Chunk], rest: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        for chunk in pending:
            yield chunk
        async for chunk in rest:
            yield chunk

    def _step(self, chunk: Chunk, *, answer_only: bool = False) -> Piece | None:
        raw_usage = chunk.get("usage")
        if raw_usage is not None:
            usage = self.dialect.read_usage(raw_usage)
            if usage is not None:
                self.meter.report(usage, raw_usage)
        choices = chunk.get("choices")
        if not choices or not isinstance(choices[0], dict):
            return None
        choice = choices[0]
        delta = choice.get("delta") or {}
        content = delta.get("content") or ""
        if answer_only:
            # after a forced </think> everything is answer, even a stray tag
            reasoning, text = "", (content.lstrip() if not self.shaper.has_content else content)
        else:
            reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
            if not isinstance(reasoning, str):
                reasoning = ""
            split_r, text = self._splitter.feed(content) if isinstance(content, str) and content else ("", "")
            reasoning += split_r
        finish = choice.get("finish_reason") or None
        shaped, tool_calls = self._text(reasoning, text, final=bool(finish))
        if self.capped:
            self.finish_reason = "length"
            return self._sent(Piece(delta=shaped, tool_calls=tool_calls or None, finish_reason="length"))
        native = delta.get("tool_calls")
        if isinstance(native, list) and native:
            self.meter.tool_calls(native)
            self._native_call_names += [c["function"]["name"] for c in native if isinstance(c, dict)
                                        and isinstance(c.get("function"), dict) and c["function"].get("name")]
            tool_calls += native
        if finish:
            finish = self._finish_reason(finish)
            self.finish_reason = finish
        if shaped or tool_calls or finish:
            return self._sent(Piece(delta=shaped, tool_calls=tool_calls or None, finish_reason=finish))
        if (reasoning or text) and self._clock() - self._last_sent >= KEEPALIVE_S:
            return self._sent(Piece(keepalive=True))
        return None

    def _finish_reason(self, upstream: str) -> str:
        if self.capped:
            return "length"
        if upstream == "stop" and self._rendered_calls is not None and self._rendered_calls.names:
            return "tool_calls"
        return upstream

    def _text(self, reasoning: str, content: str, *, final: bool) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """One step of model text -> (delta fields, tool-call deltas): held-back text released at the end of the
        call, the max_tokens ceiling, metering, the reasoning budget's count, rendered tool calls, shaping."""
        if final:
            tail_r, tail_c = self._splitter.finish()
            reasoning, content = reasoning + tail_r, content + tail_c
        if reasoning or content:
            reasoning, content = self._within_max_tokens(reasoning, content)
            self.meter.text(reasoning, content)
            if reasoning and self._cap is not None:
                self._reasoning_tokens += self.counter.count_text(reasoning)
        end = final or self.capped
        calls: list[dict[str, Any]] = []
        if self._rendered_calls is not None and (content or end):
            content, calls = self._rendered_calls.feed(content)
            if end:
                rest, more = self._rendered_calls.finish()
                content, calls = content + rest, calls + more
        shaped = self.shaper.shape(reasoning, content) if (reasoning or content) else {}
        if end:
            shaped = _merge(shaped, self.shaper.finish())
        return shaped, calls

    def _within_max_tokens(self, reasoning: str, content: str) -> tuple[str, str]:
        """The part of this (reasoning, content) that fits in ``max_tokens`` with what was relayed before; sets
        :attr:`capped` when something had to be left out. Tokens are counted only once the characters relayed could
        reach the limit (a token is at least one character), and then as one text, not piece by piece: a stream cut
        inside words ("word " "word ") would otherwise count about twice its tokens."""
        limit = self.plan.max_tokens
        self._relayed_chars += len(reasoning) + len(content)
        if self._relayed_chars < limit:
            return reasoning, content
        if self._relayed is None:
            self._relayed = RunningCount(self.counter)
            self._relayed.add(self.meter.relayed_text())
        before = self._relayed.tokens
        after = self._relayed.add(reasoning + content)
        if after <= limit:
            return reasoning, content
        self.capped = True
        self.meter.current.capped = True
        room = limit - before
        r_tokens = self.counter.count_text(reasoning) if reasoning else 0
        if r_tokens >= room:
            return self.counter.head(reasoning, room), ""
        return reasoning, self.counter.head(content, room - r_tokens)

    def _sent(self, piece: Piece) -> Piece:
        now = self._clock()
        self._last_sent = now
        if self.first_piece_at is None and not piece.keepalive:
            self.first_piece_at = now
        return piece

    def _flush(self) -> Piece | None:
        """The stream ended without a finish_reason (cut, or no [DONE]): release what the splitter held."""
        if self.finish_reason is not None:
            return None
        shaped, calls = self._text("", "", final=True)
        if self.error is None:
            generated = self.counter.count_text(self.meter.relayed_text())
            self.finish_reason = ("length" if self.capped or generated >= self.plan.max_tokens
                                  else self._finish_reason("stop"))
        if shaped or calls or self.error is None:
            return Piece(delta=shaped, tool_calls=calls or None, finish_reason=self.finish_reason)
        return None

    async def _answer_after_budget(self) -> AsyncIterator[Piece]:
        """The reasoning budget is spent: stop thinking, and get the answer with the dialect's follow-up request."""
        self.meter.current.cut_in_reasoning = True
        remaining = self.plan.max_tokens - self._reasoning_tokens
        if remaining <= 0:
            self.finish_reason = "length"
            yield self._sent(Piece(delta=self.shaper.finish(), finish_reason="length"))
            return
        upstream, route = self.connection.upstream, self.connection.route
        follow = self.dialect.budget_follow_up(self.connection.payload, self.shaper.reasoning_text, remaining, route)
        messages = follow.get("messages")
        self.meter.new_call(self.counter.count_prompt(messages) if isinstance(messages, list) else 0)
        stream = upstream.chat(follow, stream=True)
        self._splitter = ThinkSplitter()
        try:
            async for chunk in stream:
                piece = self._step(chunk, answer_only=True)
                if piece is not None:
                    yield piece
        except UpstreamError as exc:
            self.error = exc if isinstance(exc, UpstreamStreamError) else UpstreamStreamError(exc.upstream,
                                                                                               exc.message)
            raise self.error from None
        finally:
            await close_stream(stream)
        tail = self._flush()
        if tail is not None:
            yield tail


def _content_of(chunk: Chunk) -> str | None:
    choices = chunk.get("choices")
    if choices and isinstance(choices[0], dict):
        content = (choices[0].get("delta") or {}).get("content")
        return content if isinstance(content, str) else None
    return None


def _merge(first: dict[str, str], second: dict[str, str]) -> dict[str, str]:
    if not second:
        return first
    merged = dict(first)
    for key, value in second.items():
        merged[key] = merged.get(key, "") + value
    return merged
