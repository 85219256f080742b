"""The built-in simulated Hermes 4: runs everything on a fresh machine with no key, and says so.

It answers in plausible markdown (or, given tools, tool results or a JSON ``response_format``, as
:mod:`.demo_tools` says: raw ``<tool_call>`` text, prose from the results, JSON from the schema), thinks in a
``<think>`` block when the request's ``reasoning`` field is true, paces its tokens like the real service (0.77 s
to first token and 37 tokens/s by default; 0 for no delay), honours ``max_tokens`` with ``finish_reason:
"length"`` and reports usage counted with the proxy's tokenizer.

It is honest about tokens: the answer is encoded once and streamed one token at a time (a token that ends inside a
UTF-8 character is sent with the next one), so the usage it reports is the tokenizer's count of exactly what it sent,
written the way the proxy counts a completion (``<think>\n…\n</think>\n`` + answer, plus ``<|eot_id|>`` when it
stops), and never more than ``max_tokens``. A non-streaming answer takes as long as the stream of the same answer
would: first-token delay + tokens / tokens_per_s.
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol

import tiktoken

from hermes_proxy.config import Route, UpstreamConfig
from hermes_proxy.reasoning import DEEP_THINKING_PROMPT, ReasoningDecision
from hermes_proxy.upstreams.base import Chunk
from hermes_proxy.upstreams.demo_tools import compose_tool_answer
from hermes_proxy.upstreams.dialect import Dialect

SIMULATED_SUFFIX = " (simulated)"
END_OF_TURN_TOKENS = 1  # <|eot_id|>: generated (and counted) when the model stops by itself, not when it is cut


class _Counter(Protocol):
    @property
    def encoding(self) -> tiktoken.Encoding: ...

    def count_text(self, text: str) -> int: ...

    def count_prompt(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
                     system_prompt: str | None = None) -> int: ...


def _last_user_text(messages: Sequence[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _topic(text: str) -> str:
    words = re.findall(r"[\w'-]+", text)
    return " ".join(words[:8]) or "your question"


def compose_answer(question: str) -> str:
    lowered = question.lower()
    topic = _topic(question)
    if re.search(r"\b(code|python|function|script|implement|bug|program)\b", lowered):
        return (
            "Here is a small, tested example in Python:\n\n"
            "```python\n"
            "def fibonacci(n: int) -> list[int]:\n"
            '    """The first n Fibonacci numbers."""\n'
            "    numbers = [0, 1]\n"
            "    while len(numbers) < n:\n"
            "        numbers.append(numbers[-1] + numbers[-2])\n"
            "    return numbers[:n]\n"
            "\n\n"
            "print(fibonacci(10))\n"
            "```\n\n"
            "It runs in O(n) time and memory. For very large `n`, yield the numbers from a generator instead "
            "of building the list.\n\n"
            "*This answer comes from the simulated demo upstream: configure a real upstream for real answers.*"
        )
    if re.fullmatch(r"\s*(hi|hello|hey|yo|hola)( there| hermes)?[\s!.?]*", lowered):
        return (
            "Hello! I'm **Hermes**, running here as a *simulated* model on hermes-proxy's demo upstream. "
            "Ask me anything to see streaming, reasoning and live cost at work."
        )
    return (
        f"Here is a short overview: *{topic}*.\n\n"
        "1. **Start from the goal.** Say what a good outcome looks like and how you will know you reached it.\n"
        "2. **Break it down.** Split the work into steps small enough to check one at a time.\n"
        "3. **Check as you go.** Compare each step with the goal before moving on.\n\n"
        "| Step | What to check |\n|---|---|\n| Goal | Is it measurable? |\n| Steps | Is each one testable? |\n\n"
        "*This answer comes from the simulated demo upstream: configure a real upstream for real answers.*"
    )


def compose_reasoning(question: str) -> str:
    topic = _topic(question)
    seed = int(hashlib.sha256(question.encode()).hexdigest()[:4], 16)
    angle = ("the constraints first", "an example first", "what could go wrong first")[seed % 3]
    return (
        f"The user asks about {topic}. Let me consider {angle}.\n"
        "What do they most likely need? A direct answer, then structure they can act on.\n"
        "I should keep it concise, use a list for the steps, and note that this is a simulated answer."
    )


def compose_completion(question: str, *, thinking: bool, answer: str | None = None) -> str:
    """Everything the simulated model writes for ``question`` (``answer``, by default the canned one), as the
    proxy's usage counts a completion."""
    answer = compose_answer(question) if answer is None else answer
    return f"<think>\n{compose_reasoning(question)}\n</think>\n{answer}" if thinking else answer


def _limit(payload: dict[str, Any]) -> int | None:
    for key in ("max_tokens", "max_completion_tokens"):
        value = payload.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return max(value, 0)
    return None


def plan_completion(text: str, limit: int | None, counter: _Counter) -> tuple[list[tuple[str, int]], str, int]:
    """(pieces as (text, tokens), finish_reason, completion_tokens) for writing ``text`` under ``limit`` tokens.

    ``text`` is encoded once; each piece is one token's text (a token ending inside a UTF-8 character goes out with
    the next). ``completion_tokens`` is the tokenizer's count of the pieces joined, plus ``<|eot_id|>`` when the
    model stops, and never exceeds ``limit``. Only a cut answer is counted more than once (a prefix re-encodes to
    the tokens it was cut from, or rarely fewer or more: then one token less is tried until the count fits).
    """
    encoding = counter.encoding
    ids = encoding.encode_ordinary(text)
    total = counter.count_text(text)
    if limit is None or total + END_OF_TURN_TOKENS <= limit:
        cut, finish_reason, completion = len(ids), "stop", total + END_OF_TURN_TOKENS
    else:
        cut = min(len(ids), limit)
        while True:
            completion = counter.count_text(encoding.decode_bytes(ids[:cut]).decode("utf-8", "ignore"))
            if completion <= limit or cut == 0:
                break
            cut -= 1
        finish_reason = "length"
    pieces: list[tuple[str, int]] = []
    decoder = codecs.getincrementaldecoder("utf-8")()
    waiting = 0
    for token in ids[:cut]:
        waiting += 1
        piece = decoder.decode(encoding.decode_single_token_bytes(token))
        if piece:
            pieces.append((piece, waiting))
            waiting = 0
    return pieces, finish_reason, completion


class DemoDialect(Dialect):
    """The simulator takes the decision as a plain ``reasoning: bool`` field and thinks in ``<think>``."""

    kind = "demo"
    thinking_prompt = "none"

    def with_reasoning(self, payload: Mapping[str, Any], decision: ReasoningDecision, route: Route) -> dict[str, Any]:
        return {**super().with_reasoning(payload, decision, route), "reasoning": decision.enabled}

    def describe(self) -> str:
        return "SIMULATED Hermes 4, in-process (no API key needed)"


class DemoUpstream:
    simulated = True

    def __init__(self, config: UpstreamConfig, counter: _Counter, dialect: Dialect | None = None,
                 *, sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self.config = config
        self.dialect = dialect or DemoDialect(config)
        self._counter = counter
        self._sleep = sleep

    @property
    def name(self) -> str:
        return self.config.name

    async def chat(self, payload: dict[str, Any], *, stream: bool) -> AsyncIterator[Chunk]:
        payload = self.dialect.request_body(payload, stream=stream)
        messages = payload.get("messages") or []
        question = _last_user_text(messages)
        thinking = bool(payload.get("reasoning"))
        answer = compose_tool_answer(payload, question)  # tools, tool results, JSON output; None: canned markdown
        pieces, finish_reason, completion_tokens = plan_completion(
            compose_completion(question, thinking=thinking, answer=answer), _limit(payload), self._counter)
        model = f"{payload.get('model', 'Hermes-4')}{SIMULATED_SUFFIX}"
        created = int(time.time())
        chunk_id = "chatcmpl-demo-" + hashlib.sha256(f"{question}{created}".encode()).hexdigest()[:16]
        # as a real Hermes would see it: with thinking on, the deep-thinking system prompt is part of the prompt
        prompt_tokens = self._counter.count_prompt(messages, payload.get("tools"),
                                                   system_prompt=DEEP_THINKING_PROMPT if thinking else None)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}

        delay = 1.0 / self.config.tokens_per_s if self.config.tokens_per_s else 0.0
        base = {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model}
        if not stream:
            # as long as the stream of the same answer: first token, then every token at tokens_per_s
            wait = self.config.first_token_s + delay * sum(tokens for _, tokens in pieces)
            if wait:
                await self._sleep(wait)
            generated = "".join(text for text, _ in pieces)
            yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": generated},
                                        "finish_reason": finish_reason}], "usage": usage}
            return
        if self.config.first_token_s:
            await self._sleep(self.config.first_token_s)
        yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        for piece, tokens in pieces:
            if delay:
                await self._sleep(delay * tokens)
            yield {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]}
        yield {**base, "choices": [], "usage": usage}

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
