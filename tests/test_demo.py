"""The simulated upstream is honest: it counts tokens, not words, never writes past max_tokens, reports the
tokenizer's count of what it wrote, and takes as long without streaming as with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hermes_proxy.app import create_app
from hermes_proxy.config import UpstreamConfig
from hermes_proxy.tokens import TokenCounter
from hermes_proxy.upstreams.demo import DemoUpstream, compose_answer, compose_completion, compose_reasoning
from tests.conftest import build_config

QUESTIONS = ["hello", "write python code for fibonacci", "How do I plan a week in Kyoto?",
             "日本語で説明してください", "Объясни, пожалуйста 🎉"]


def demo_config(first_token_s: float = 0, tokens_per_s: float = 0) -> UpstreamConfig:
    return replace(build_config(None).upstreams[0], first_token_s=first_token_s, tokens_per_s=tokens_per_s)


class Sleeps:
    """The injected sleep: records every delay, waits for none."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def run_demo(demo: DemoUpstream, payload: dict[str, Any], *, stream: bool) -> tuple[str, str | None, dict[str, Any]]:
    """(text, finish_reason, usage) of one demo call."""
    text, finish, usage = "", None, None
    chunks = demo.chat(payload, stream=stream)
    assert isinstance(chunks, AsyncIterator)
    async for chunk in chunks:
        if chunk.get("usage") is not None:
            assert usage is None, "usage is reported once"
            usage = chunk["usage"]
        for choice in chunk["choices"]:
            text += choice["delta"].get("content") or ""
            finish = choice.get("finish_reason") or finish
    assert usage is not None
    return text, finish, usage


def body(question: str, max_tokens: int | None, thinking: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {"model": "Hermes-4-405B", "messages": [{"role": "user", "content": question}],
                               "reasoning": thinking}
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    return payload


def check_honest(counter: TokenCounter, question: str, thinking: bool, max_tokens: int | None,
                 text: str, finish: str | None, usage: dict[str, Any]) -> None:
    full = compose_completion(question, thinking=thinking)
    completion = usage["completion_tokens"]
    assert full.startswith(text)
    # the usage is the tokenizer's count of what was written, <|eot_id|> included when the model stopped
    assert completion == counter.count_text(text + ("<|eot_id|>" if finish == "stop" else ""))
    if max_tokens is not None:
        assert completion <= max_tokens
    fits = max_tokens is None or counter.count_text(full) + 1 <= max_tokens
    assert finish == ("stop" if fits else "length")
    if fits:
        assert text == full
    assert usage["total_tokens"] == usage["prompt_tokens"] + completion


# --- unit level -----------------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=st.one_of(st.sampled_from(QUESTIONS), st.text(max_size=60)),
       max_tokens=st.one_of(st.integers(min_value=1, max_value=40), st.integers(min_value=1, max_value=400),
                            st.none()),
       thinking=st.booleans())
def test_usage_never_exceeds_max_tokens_and_is_the_count_of_what_was_written(
        counter: TokenCounter, question: str, max_tokens: int | None, thinking: bool) -> None:
    demo = DemoUpstream(demo_config(), counter)
    payload = body(question, max_tokens, thinking)
    streamed = asyncio.run(run_demo(demo, payload, stream=True))
    whole = asyncio.run(run_demo(demo, payload, stream=False))
    check_honest(counter, question, thinking, max_tokens, *streamed)
    assert whole == streamed  # the same text, finish and usage with or without streaming


@pytest.mark.parametrize("thinking", [False, True])
@pytest.mark.parametrize("stream", [False, True])
async def test_small_max_tokens_one_by_one(counter: TokenCounter, thinking: bool, stream: bool) -> None:
    demo = DemoUpstream(demo_config(), counter)
    for question in QUESTIONS:
        for max_tokens in range(1, 25):
            text, finish, usage = await run_demo(demo, body(question, max_tokens, thinking), stream=stream)
            check_honest(counter, question, thinking, max_tokens, text, finish, usage)
            assert finish == "length"
            if text.isascii():  # cut at a token boundary: every token allowed was written
                assert usage["completion_tokens"] == max_tokens


async def test_an_answer_that_fills_max_tokens_exactly_is_cut_before_its_end_of_turn(counter: TokenCounter) -> None:
    demo = DemoUpstream(demo_config(), counter)
    full = compose_completion("hello", thinking=False)
    size = counter.count_text(full)
    text, finish, usage = await run_demo(demo, body("hello", size, False), stream=True)
    assert (text, finish, usage["completion_tokens"]) == (full, "length", size)
    text, finish, usage = await run_demo(demo, body("hello", size + 1, False), stream=True)
    assert (text, finish, usage["completion_tokens"]) == (full, "stop", size + 1)


async def test_think_block_is_written_the_way_usage_counts_it(counter: TokenCounter) -> None:
    demo = DemoUpstream(demo_config(), counter)
    question = "How do I plan a week in Kyoto?"
    text, finish, usage = await run_demo(demo, body(question, None, True), stream=True)
    reasoning, answer = compose_reasoning(question), compose_answer(question)
    assert text == f"<think>\n{reasoning}\n</think>\n{answer}" and finish == "stop"
    assert usage["completion_tokens"] == counter.count_completion(reasoning, answer)[0]


async def test_each_chunk_is_one_token_and_a_split_character_waits_for_its_last_byte(counter: TokenCounter) -> None:
    demo = DemoUpstream(demo_config(), counter)
    question = "日本語で説明してください 🎉"
    chunks = [c async for c in demo.chat(body(question, None, False), stream=True)]
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks if c["choices"] and c["choices"][0]["delta"].get(
        "content")]
    full = compose_completion(question, thinking=False)
    assert "".join(pieces) == full and "\ufffd" not in full
    assert len(pieces) < len(counter.encoding.encode_ordinary(full))  # some characters span two tokens
    assert sum(counter.count_text(p) for p in pieces if p.isascii()) == sum(1 for p in pieces if p.isascii())


# --- pacing ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_tokens", [None, 7])
@pytest.mark.parametrize("thinking", [False, True])
async def test_not_streaming_takes_as_long_as_the_stream(counter: TokenCounter, max_tokens: int | None,
                                                         thinking: bool) -> None:
    config = demo_config(first_token_s=0.77, tokens_per_s=37)
    payload = body("write python code", max_tokens, thinking)
    streamed, whole = Sleeps(), Sleeps()
    text, finish, _ = await run_demo(DemoUpstream(config, counter, sleep=streamed), payload, stream=True)
    await run_demo(DemoUpstream(config, counter, sleep=whole), payload, stream=False)
    tokens = len(counter.encoding.encode_ordinary(text))
    assert whole.delays == [pytest.approx(0.77 + tokens / 37)]
    assert streamed.delays[0] == 0.77 and len(streamed.delays) == 1 + tokens  # ASCII answer: one token a chunk
    assert sum(streamed.delays) == pytest.approx(whole.delays[0])
    assert finish == ("length" if max_tokens else "stop")


async def test_zero_pacing_never_sleeps(counter: TokenCounter) -> None:
    sleeps = Sleeps()
    demo = DemoUpstream(demo_config(first_token_s=0, tokens_per_s=0), counter, sleep=sleeps)
    for stream in (False, True):
        await run_demo(demo, body("hello", None, True), stream=stream)
    assert sleeps.delays == []


# --- through the real app and the openai SDK ------------------------------------------------------------------------


@pytest.fixture
async def sdk(aiohttp_client: Any, counter: TokenCounter) -> AsyncIterator[openai.AsyncOpenAI]:
    client: TestClient = await aiohttp_client(create_app(build_config(None), counter=counter))
    async with openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="anything", max_retries=0,
                                  timeout=20) as api:
        yield api


async def ask(sdk: openai.AsyncOpenAI, question: str, max_tokens: int | None, thinking: bool,
              stream: bool) -> tuple[str, str, str | None, Any]:
    """(reasoning, content, finish_reason, usage) as an SDK app sees them."""
    model = "hermes-4-405b:thinking" if thinking else "hermes-4-405b"
    extra: dict[str, Any] = {} if max_tokens is None else {"max_tokens": max_tokens}
    messages: Any = [{"role": "user", "content": question}]
    if not stream:
        completion = await sdk.chat.completions.create(model=model, messages=messages, **extra)
        message = completion.choices[0].message
        return (getattr(message, "reasoning_content", None) or "", message.content or "",
                completion.choices[0].finish_reason, completion.usage)
    reasoning, content, finish, usage = "", "", None, None
    async for chunk in await sdk.chat.completions.create(model=model, messages=messages, stream=True,
                                                         stream_options={"include_usage": True}, **extra):
        usage = chunk.usage or usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
            finish = choice.finish_reason or finish
    return reasoning, content, finish, usage


@pytest.mark.parametrize("thinking", [False, True])
@pytest.mark.parametrize("stream", [False, True])
async def test_through_the_app_usage_fits_max_tokens_and_recounts(sdk: openai.AsyncOpenAI, counter: TokenCounter,
                                                                  thinking: bool, stream: bool) -> None:
    for question in QUESTIONS[:3]:
        full = compose_completion(question, thinking=thinking)
        size = counter.count_text(full)
        for max_tokens in [*range(1, 13), 40, size, size + 1, None]:
            reasoning, content, finish, usage = await ask(sdk, question, max_tokens, thinking, stream)
            assert usage is not None
            if max_tokens is not None:
                assert usage.completion_tokens <= max_tokens
            if finish == "stop":
                # the whole answer, recounted from what the client got: <think> block + answer + <|eot_id|>
                assert usage.completion_tokens == counter.count_completion(reasoning, content)[0] == size + 1
                assert content == compose_answer(question)
                assert max_tokens is None or max_tokens > size
            else:
                assert finish == "length" and max_tokens is not None and max_tokens <= size
                if not thinking:
                    assert usage.completion_tokens == counter.count_text(content) == max_tokens
                # what the demo reported for the same request reaches the client unchanged
                demo = DemoUpstream(demo_config(), counter)
                raw = await run_demo(demo, body(question, max_tokens, thinking), stream=True)
                assert usage.completion_tokens == raw[2]["completion_tokens"] == max_tokens
            if thinking and usage.completion_tokens_details is not None:
                assert (usage.completion_tokens_details.reasoning_tokens or 0) <= usage.completion_tokens
