"""Stage 6, outcome (pure): the usage of a request from what its upstream calls reported, and its cost.

An upstream may report usage once at the end (OpenAI, OpenRouter) or a running total in every chunk (vLLM with
continuous usage stats): within one upstream call the last figures win. Separate calls (a reasoning-budget follow-up)
add up. A call that reported nothing, or that the proxy cut at ``max_tokens``, is counted here from the text relayed,
and the usage is marked estimated. The completion billed never exceeds the ``max_tokens`` the request was admitted
with: an upstream that generates past it is not relayed past it, and not billed past it either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hermes_proxy.tokens import TokenCounter
from hermes_proxy.usage import Usage


@dataclass(slots=True)
class CallUsage:
    """What one upstream call reported (its last usage figures) or, failing that, the text to count."""

    reported: Usage | None = None
    #: the upstream gave reasoning_tokens itself (else they are counted from the reasoning text)
    reported_reasoning: bool = False
    reasoning_text: list[str] = field(default_factory=list)
    content_text: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    #: the prompt this call sent, for a call that reported nothing
    prompt_tokens: int = 0
    #: the proxy hung up on this call inside the reasoning (a reasoning budget): what it generated is that reasoning
    cut_in_reasoning: bool = False
    #: the proxy stopped relaying this call at max_tokens: it is billed for what was relayed
    capped: bool = False
    #: running counts for checkpoints: how many pieces of each text were added to them
    counted_pieces: tuple[int, int] = (0, 0)
    running: tuple[RunningCount, RunningCount] | None = None


class RunningCount:
    """Tokens of a growing text, counted once: the text up to its last word boundary is counted and set aside, only
    the unfinished word is counted again with each addition (tokens never span a space that starts a word)."""

    def __init__(self, counter: TokenCounter) -> None:
        self._counter = counter
        self._done = 0
        self._tail = ""
        self.tokens = 0

    def add(self, text: str) -> int:
        tail = self._tail + text
        cut = _last_word_start(tail)
        if cut > 0:
            self._done += self._counter.count_text(tail[:cut])
            tail = tail[cut:]
        self._tail = tail
        self.tokens = self._done + (self._counter.count_text(tail) if tail else 0)
        return self.tokens


def _last_word_start(text: str) -> int:
    """The index of the last space that follows a non-space and precedes a non-space (0 when there is none)."""
    for i in range(len(text) - 2, 0, -1):
        if text[i] == " " and not text[i - 1].isspace() and not text[i + 1].isspace():
            return i
    return 0



class UsageMeter:
    """Usage over the upstream calls of one request; :meth:`new_call` before each call."""

    def __init__(self) -> None:
        self.calls: list[CallUsage] = []

    def new_call(self, prompt_tokens: int) -> CallUsage:
        call = CallUsage(prompt_tokens=prompt_tokens)
        self.calls.append(call)
        return call

    @property
    def current(self) -> CallUsage:
        return self.calls[-1]

    def report(self, usage: Usage, raw: Any) -> None:
        """The upstream's usage figures for the current call: they replace any earlier figures of the same call."""
        call = self.current
        call.reported = usage
        details = raw.get("completion_tokens_details") if isinstance(raw, dict) else None
        call.reported_reasoning = isinstance(details, dict) and details.get("reasoning_tokens") is not None

    def text(self, reasoning: str, content: str) -> None:
        if reasoning:
            self.current.reasoning_text.append(reasoning)
        if content:
            self.current.content_text.append(content)

    def relayed_text(self) -> str:
        """Everything the upstream calls produced so far, reasoning and answer (for counting)."""
        return "".join("".join(call.reasoning_text) + "".join(call.content_text) for call in self.calls)

    def tool_calls(self, fragments: list[dict[str, Any]]) -> None:
        self.current.tool_calls.extend(fragments)

    def running(self, counter: TokenCounter, max_tokens: int) -> Usage:
        """The usage so far, for a checkpoint on the hold: reported figures where the upstream gave running totals,
        else the text relayed, counted once over the life of the call (estimated)."""
        prompt = completion = reasoning = 0
        for call in self.calls:
            if call.reported is not None and not call.capped:
                prompt += call.reported.prompt_tokens
                completion += call.reported.completion_tokens
                reasoning += call.reported.reasoning_tokens
                continue
            if call.running is None:
                call.running = (RunningCount(counter), RunningCount(counter))
            (r_done, c_done), (r_count, c_count) = call.counted_pieces, call.running
            r_tokens = r_count.add("".join(call.reasoning_text[r_done:]))
            c_tokens = c_count.add("".join(call.content_text[c_done:]))
            call.counted_pieces = (len(call.reasoning_text), len(call.content_text))
            prompt += call.prompt_tokens
            completion += r_tokens + c_tokens
            reasoning += r_tokens
        completion = min(completion, max_tokens)
        return Usage(prompt_tokens=prompt, completion_tokens=completion, reasoning_tokens=min(reasoning, completion),
                     estimated=True)

    def total(self, counter: TokenCounter, max_tokens: int) -> Usage:
        parts = [_call_usage(call, counter) for call in self.calls]
        if not parts:
            return Usage(estimated=True)
        costs = [u.upstream_cost_usd for u in parts if u.upstream_cost_usd is not None]
        completion = sum(u.completion_tokens for u in parts)
        over = completion > max_tokens
        if over:
            completion = max_tokens
        return Usage(
            prompt_tokens=sum(u.prompt_tokens for u in parts),
            completion_tokens=completion,
            reasoning_tokens=min(sum(u.reasoning_tokens for u in parts), completion),
            cached_prompt_tokens=sum(u.cached_prompt_tokens for u in parts),
            # the upstream's own cost counts only when every call reported one, and not for tokens past max_tokens
            upstream_cost_usd=sum(costs, Decimal(0)) if len(costs) == len(parts) and not over else None,
            estimated=over or any(u.estimated for u in parts),
        )


def _call_usage(call: CallUsage, counter: TokenCounter) -> Usage:
    reasoning_text = "".join(call.reasoning_text)
    if call.reported is not None and not call.capped:
        usage = call.reported
        if call.reported_reasoning or not reasoning_text:
            return usage
        reasoning = counter.count_completion(reasoning_text, "")[1]
        return Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                     reasoning_tokens=min(reasoning, usage.completion_tokens),
                     cached_prompt_tokens=usage.cached_prompt_tokens, upstream_cost_usd=usage.upstream_cost_usd,
                     estimated=usage.estimated)
    content_text = "".join(call.content_text)
    prompt = call.reported.prompt_tokens if call.reported is not None else call.prompt_tokens
    completion = reasoning = 0
    if call.cut_in_reasoning:
        completion = reasoning = counter.count_completion(reasoning_text, "")[1]
    elif reasoning_text or content_text or call.tool_calls:
        completion, reasoning = counter.count_completion(reasoning_text, content_text,
                                                         tool_calls=call.tool_calls or None)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, reasoning_tokens=reasoning, estimated=True)

