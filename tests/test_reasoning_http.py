"""Reasoning control through the whole proxy: what each upstream kind receives, what the client reads, the budget."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from hermes_proxy.app import create_app
from hermes_proxy.reasoning import DEEP_THINKING_PROMPT
from tests.conftest import build_config
from tests.fake_upstream import ANSWER, REASONING, Script, make_upstream_app

SYSTEM = {"role": "system", "content": "Be brief."}
USER = {"role": "user", "content": "hello"}


async def start(aiohttp_server: Any, aiohttp_client: Any, counter: Any, script: Script, **sections: Any) -> Any:
    server = await aiohttp_server(make_upstream_app(script))
    config = build_config(str(server.make_url("/v1")), script.dialect, **sections)
    client = await aiohttp_client(create_app(config, counter=counter))
    return client


def sdk(client: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="x", max_retries=0)


WAYS_ON: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    ("hermes-4-405b", {"reasoning": True}, {}),
    ("hermes-4-405b", {"reasoning": {"enabled": True}}, {}),
    ("hermes-4-405b", {"reasoning_effort": "high"}, {}),
    ("hermes-4-405b", {"chat_template_kwargs": {"thinking": True}}, {}),
    ("hermes-4-405b", {}, {"X-Hermes-Reasoning": "on"}),
    ("hermes-4-405b:thinking", {}, {}),
]


@pytest.mark.parametrize(("model", "extra", "headers"), WAYS_ON)
@pytest.mark.parametrize("dialect", ["vllm", "openrouter", "nous"])
async def test_each_way_of_asking_reaches_each_upstream_its_own_way(aiohttp_server: Any, aiohttp_client: Any,
                                                                    counter: Any, dialect: str, model: str,
                                                                    extra: dict[str, Any],
                                                                    headers: dict[str, str]) -> None:
    script = Script(dialect=dialect)
    client = await start(aiohttp_server, aiohttp_client, counter, script)
    completion = await sdk(client).chat.completions.create(model=model, messages=[SYSTEM, USER], extra_body=extra,
                                                           extra_headers=headers)
    sent = script.requests[0]
    system = sent["messages"][0]
    for proxy_only in ("reasoning_effort", "reasoning_format", "max_reasoning_tokens"):
        assert proxy_only not in sent
    if dialect == "vllm":
        assert sent["chat_template_kwargs"]["thinking"] is True
        assert system["content"].startswith(DEEP_THINKING_PROMPT) and system["content"].endswith("Be brief.")
        assert "reasoning" not in sent
    elif dialect == "openrouter":
        assert sent["reasoning"] == {"enabled": True}
        assert system["content"] == "Be brief."
    else:
        assert system["content"] == DEEP_THINKING_PROMPT + "\n\nBe brief."
        assert "reasoning" not in sent and "chat_template_kwargs" not in sent
    message = completion.choices[0].message
    assert message.content == ANSWER
    assert message.model_extra["reasoning_content"] == REASONING


@pytest.mark.parametrize("dialect", ["vllm", "openrouter", "nous"])
async def test_off_means_no_think_prompt_anywhere(aiohttp_server: Any, aiohttp_client: Any, counter: Any,
                                                  dialect: str) -> None:
    script = Script(dialect=dialect)
    client = await start(aiohttp_server, aiohttp_client, counter, script)
    raw = await sdk(client).chat.completions.with_raw_response.create(
        model="hermes-4-405b:fast", messages=[USER], extra_body={"reasoning": False})
    sent = script.requests[0]
    assert all(DEEP_THINKING_PROMPT not in str(m.get("content")) for m in sent["messages"])
    if dialect == "vllm":
        assert sent["chat_template_kwargs"] == {"thinking": False}
    if dialect == "openrouter":
        assert sent["reasoning"] == {"enabled": False}
    assert raw.headers["x-hermes-reasoning"].startswith("off")
    assert raw.parse().choices[0].message.model_extra.get("reasoning_content") is None


async def test_raw_and_hidden_formats_and_reasoning_billed_either_way(aiohttp_server: Any, aiohttp_client: Any,
                                                                      counter: Any) -> None:
    script = Script(dialect="vllm")
    client = await start(aiohttp_server, aiohttp_client, counter, script)
    raw = await sdk(client).chat.completions.create(model="hermes-4-405b:thinking", messages=[USER],
                                                    extra_body={"reasoning_format": "raw"})
    assert raw.choices[0].message.content == f"<think>\n{REASONING}\n</think>\n\n{ANSWER}"
    hidden = await sdk(client).chat.completions.with_raw_response.create(
        model="hermes-4-405b", messages=[USER], extra_body={"reasoning": {"enabled": True, "exclude": True}})
    message = hidden.parse().choices[0].message
    assert message.content == ANSWER and not message.model_extra.get("reasoning_content")
    assert int(hidden.headers["x-hermes-reasoning-tokens"]) > 0
    assert int(hidden.headers["x-hermes-completion-tokens"]) >= int(hidden.headers["x-hermes-reasoning-tokens"])


async def test_streamed_reasoning_content_reads_in_the_sdk_and_usage_counts_it_once(
        aiohttp_server: Any, aiohttp_client: Any, counter: Any) -> None:
    script = Script(dialect="vllm", piece=3, send_usage=False)  # an old server: usage counted locally
    client = await start(aiohttp_server, aiohttp_client, counter, script)
    stream = await sdk(client).chat.completions.create(model="hermes-4-405b:thinking", messages=[USER], stream=True,
                                                       stream_options={"include_usage": True})
    reasoning, content, usage = "", "", None
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
            content += choice.delta.content or ""
    assert (reasoning, content) == (REASONING, ANSWER)
    assert usage is not None and usage.model_extra["estimated"] is True
    expected_completion, expected_reasoning = counter.count_completion(REASONING, ANSWER)
    assert usage.completion_tokens == expected_completion
    assert usage.completion_tokens_details.reasoning_tokens == expected_reasoning < expected_completion


async def test_history_reasoning_is_not_sent_back(aiohttp_server: Any, aiohttp_client: Any, counter: Any) -> None:
    script = Script(dialect="vllm")
    client = await start(aiohttp_server, aiohttp_client, counter, script)
    history = [USER, {"role": "assistant", "content": "<think>\nold thoughts\n</think>\n\nHi!",
                      "reasoning_content": "old thoughts"}, {"role": "user", "content": "and now?"}]
    await sdk(client).chat.completions.create(model="hermes-4-405b:thinking", messages=history)
    earlier = script.requests[0]["messages"][1]
    assert "old thoughts" not in str(earlier) and "reasoning_content" not in earlier
    assert earlier["content"] == "<think> </think>Hi!"  # what the Hermes template expects with thinking on


async def test_policy_deny_refuses_an_explicit_ask_and_says_so_otherwise(aiohttp_server: Any, aiohttp_client: Any,
                                                                         counter: Any) -> None:
    script = Script(dialect="vllm")
    client = await start(aiohttp_server, aiohttp_client, counter, script,
                         teams={"default": {"reasoning": "deny"}})
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await sdk(client).chat.completions.create(model="hermes-4-405b:thinking", messages=[USER])
    assert "deny" in caught.value.message and "default" in caught.value.message
    raw = await sdk(client).chat.completions.with_raw_response.create(model="hermes-4-405b", messages=[USER])
    assert raw.headers["x-hermes-reasoning"] == "off; reason=policy"
    assert script.requests[-1]["chat_template_kwargs"] == {"thinking": False}


async def test_reasoning_budget_ends_thinking_and_still_answers_on_vllm(aiohttp_server: Any, aiohttp_client: Any,
                                                                        counter: Any) -> None:
    long_reasoning = "Let me think about this step by step. " * 40
    script = Script(dialect="vllm", reasoning_text=long_reasoning, piece=8)
    client = await start(aiohttp_server, aiohttp_client, counter, script)
    stream = await sdk(client).chat.completions.create(
        model="hermes-4-405b", messages=[USER], stream=True, stream_options={"include_usage": True},
        extra_body={"reasoning": {"enabled": True, "max_tokens": 20}})
    reasoning, content, finish, usage = "", "", None, None
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert content == ANSWER and finish == "stop"
    assert 0 < counter.count_text(reasoning) <= 30 and reasoning in long_reasoning
    assert len(script.requests) == 2
    follow = script.requests[1]
    assert follow["continue_final_message"] is True and follow["add_generation_prompt"] is False
    last = follow["messages"][-1]
    assert last["role"] == "assistant" and last["content"].startswith("<think>\n")
    assert last["content"].rstrip().endswith("</think>")
    # both upstream calls are billed: the cut first call as counted here (estimated), then the continuation's 31 + 20
    assert usage is not None and usage.model_extra["estimated"] is True
    thought = usage.completion_tokens_details.reasoning_tokens
    assert usage.completion_tokens == thought + 20 and 20 <= thought <= 30
    assert usage.prompt_tokens == 31 + counter.count_prompt([USER], system_prompt=DEEP_THINKING_PROMPT,
                                                            thinking=True)


async def test_reasoning_budget_on_an_upstream_that_cannot_continue_asks_again_for_the_answer(
        aiohttp_server: Any, aiohttp_client: Any, counter: Any) -> None:
    script = Script(dialect="nous", reasoning_text="Thinking hard. " * 40, piece=8)
    client = await start(aiohttp_server, aiohttp_client, counter, script)
    completion = await sdk(client).chat.completions.create(
        model="hermes-4-405b:thinking", messages=[SYSTEM, USER], extra_body={"max_reasoning_tokens": 10})
    choice = completion.choices[0]
    assert choice.message.content == ANSWER and choice.finish_reason == "stop"
    thought = choice.message.model_extra["reasoning_content"]
    assert thought and "Thinking hard." in thought and len(thought) < len(script.reasoning_text)
    assert len(script.requests) == 2
    follow = script.requests[1]
    system = follow["messages"][0]
    assert system["role"] == "system" and DEEP_THINKING_PROMPT not in system["content"]
    assert system["content"].startswith("Be brief.") and thought.strip() in system["content"]
    # both calls billed: the cut first one as counted here (estimated), then the second one's 31 + 20
    assert completion.usage is not None and completion.usage.model_extra["estimated"] is True
    assert completion.usage.completion_tokens == completion.usage.completion_tokens_details.reasoning_tokens + 20


async def test_reasoning_budget_with_no_room_left_ends_with_the_reasoning_and_length(
        aiohttp_server: Any, aiohttp_client: Any, counter: Any) -> None:
    script = Script(dialect="nous", reasoning_text="Thinking hard. " * 40, piece=8)
    client = await start(aiohttp_server, aiohttp_client, counter, script)
    completion = await sdk(client).chat.completions.create(
        model="hermes-4-405b:thinking", messages=[USER], max_tokens=10, extra_body={"max_reasoning_tokens": 10})
    choice = completion.choices[0]
    assert choice.finish_reason == "length" and not choice.message.content
    assert choice.message.model_extra["reasoning_content"]
    assert len(script.requests) == 1


async def test_openrouter_reasoning_budget_is_cut_by_the_proxy_and_still_answers(
        aiohttp_server: Any, aiohttp_client: Any, counter: Any) -> None:
    # OpenRouter does not honour reasoning.max_tokens for Hermes 4 (test_pipeline_behaviour has the route that does)
    script = Script(dialect="openrouter", reasoning_text="Pondering deeply. " * 30, piece=6)
    client = await start(aiohttp_server, aiohttp_client, counter, script)
    completion = await sdk(client).chat.completions.create(
        model="hermes-4-405b", messages=[USER], extra_body={"reasoning": {"enabled": True, "max_tokens": 8}})
    assert script.requests[0]["reasoning"] == {"enabled": True}
    assert len(script.requests) == 2 and script.requests[1]["reasoning"] == {"enabled": False}
    assert completion.choices[0].message.content == ANSWER
