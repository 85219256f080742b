"""Tokens of tools: every added token of tokenizer.json counts as one token (prompt and completion), the cl100k
fallback knows Hermes 4's confirmed added tokens, and the prompt counted natively (``count_prompt(messages, tools)``,
what the pipeline reserves for) equals the prompt the rendered dialect sends."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from hermes_proxy.config import Route, TokensConfig, UpstreamConfig
from hermes_proxy.reasoning import DEEP_THINKING_PROMPT, ReasoningDecision
from hermes_proxy.tokens import TokenCounter, load_token_counter
from hermes_proxy.tokens.counter import added_token_finder
from hermes_proxy.tokens.encodings import HERMES4_ADDED_TOKENS
from hermes_proxy.tools.render import render_tool_result
from hermes_proxy.upstreams import dialect_for

ROUTE = Route(upstream="u", model="m")

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
ADDED = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
         "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"]

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]
CALL = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
HISTORY = [
    {"role": "system", "content": "You help travellers."},
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": "Checking.", "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "c1", "content": '{"temp_c": 18, "sky": "clear"}'},
    {"role": "tool", "tool_call_id": "c1", "content": "no more data"},
    {"role": "user", "content": "And tomorrow?"},
]


def _corpus() -> list[str]:
    rng = random.Random(11)
    words = ["the", "weather", "in", "Oslo", "city", "name", "arguments", "function", '{"', '": "', '"}', "get_weather",
             "You", "are", "tools", "call", "json", "object", "#", "\n", "\n\n", "temp_c", "18", "clear", "sky"]
    return ["".join(rng.choice(words) + rng.choice([" ", "", ", ", ".\n"]) for _ in range(40)) for _ in range(1500)]


@pytest.fixture(scope="module")
def hermes_like(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tokenizer, TokenCounter]:
    """A small byte-level BPE tokenizer.json whose added tokens are Llama 3's framing and Hermes' tool/think tags."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=800, special_tokens=ADDED, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer)
    path = tmp_path_factory.mktemp("hermes") / "tokenizer.json"
    tok.save(str(path))
    added = [t["content"] for t in json.loads(path.read_text())["added_tokens"]]
    assert set(ADDED) <= set(added)
    return tok, load_token_counter(TokensConfig(tokenizer_path=path), data_dir=path.parent)


def truth(tok: Tokenizer, text: str) -> int:
    return len(tok.encode(text, add_special_tokens=False).ids)


@pytest.fixture(scope="module")
def fallback(tmp_path_factory: pytest.TempPathFactory) -> TokenCounter:
    return load_token_counter(TokensConfig(), data_dir=tmp_path_factory.mktemp("data"))


def test_every_added_token_counts_as_one(hermes_like: tuple[Tokenizer, TokenCounter]) -> None:
    tok, counter = hermes_like
    for token in ADDED:
        assert counter.count_text(token) == 1 == truth(tok, token)
    assert counter.count_text("<tool_call><tool_call>") == 2
    for text in ["a<tool_call>b", "x<|x<tool_call>y", "<|not_added|><think>", "</tool_call\n<tool_call", "<tool<think>",
                 "weather < 18 and > 3", '<tool_call>\n{"name": "get_weather"}\n</tool_call><|eot_id|>']:
        assert counter.count_text(text) == truth(tok, text), text


def test_rendered_tools_calls_and_results_count_as_the_tokenizer_does(
        hermes_like: tuple[Tokenizer, TokenCounter]) -> None:
    tok, counter = hermes_like
    for tools in (TOOLS, None):
        text = counter.render_prompt(HISTORY, tools)
        assert counter.count_prompt(HISTORY, tools) == truth(tok, text)
    completion, reasoning = counter.count_completion("Oslo, then.", "Sure.", tool_calls=[CALL])
    whole = '<think>\nOslo, then.\n</think>\nSure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}' \
            "\n</tool_call><|eot_id|>"
    assert completion == truth(tok, whole)
    assert reasoning == truth(tok, "<think>\nOslo, then.\n</think>\n")
    # the tags are one token each: a call costs 2 tokens of tags, not ~8
    assert counter.count_text(whole) == counter.encoding.encode(whole, allowed_special="all").__len__()


def test_fallback_counts_hermes_confirmed_added_tokens_as_one(fallback: TokenCounter) -> None:
    assert HERMES4_ADDED_TOKENS == ("<tool_call>", "</tool_call>")
    assert fallback.count_text("<tool_call>") == 1
    assert fallback.count_text("</tool_call>") == 1
    assert fallback.count_text("<think>") == 3  # UNCONFIRMED as an added token: counted as text
    call = '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>'
    assert fallback.count_text(call) == len(fallback.encoding.encode(call, allowed_special="all"))
    # Llama 3's specials keep their real ids; Hermes' come after them
    assert fallback.encoding.encode("<|eot_id|><tool_call>", allowed_special="all") == [128009, 128256]


def test_finder_fast_path_needs_a_start_character() -> None:
    assert added_token_finder(frozenset({"<|eot_id|>"}))[1] == ("<|",)
    assert added_token_finder(frozenset({"<|eot_id|>", "<tool_call>", "[TOOL]"}))[1] == ("<", "[")


# --- the prompt the pipeline reserves for == the prompt a rendered upstream is sent ----------------------------------


ON = ReasoningDecision(True, "request")
OFF = ReasoningDecision(False, "request")


def planned_and_sent(counter: TokenCounter, messages: list[dict[str, Any]], tools: list[dict[str, Any]], kind: str,
                     decision: ReasoningDecision) -> tuple[int, int]:
    """(the prompt as pipeline.plan counts it, the prompt of the body a rendered-tools route is sent)."""
    dialect = dialect_for(UpstreamConfig(name="u", kind=kind))  # type: ignore[arg-type]
    history = dialect.history(messages, decision.enabled)
    thinking = decision.enabled and dialect.template_rewrites_history
    planned = counter.count_prompt(history, tools, system_prompt=DEEP_THINKING_PROMPT if decision.enabled else None,
                                   thinking=thinking)
    sent = dialect.with_tools(dialect.with_reasoning({"messages": history, "tools": tools}, decision, ROUTE))
    assert "tools" not in sent
    # the host renders the text messages with its template; a vLLM with thinking on picks the deep-thinking default
    template_thinking = bool((sent.get("chat_template_kwargs") or {}).get("thinking"))
    # OpenRouter takes reasoning as a request field: the plan assumes the host adds the deep-thinking prompt itself
    by_host = DEEP_THINKING_PROMPT if decision.enabled and dialect.thinking_prompt == "none" else None
    return planned, counter.count_prompt(sent["messages"], system_prompt=by_host, thinking=template_thinking)


@pytest.mark.parametrize("decision", [OFF, ON], ids=["off", "on"])
@pytest.mark.parametrize("kind", ["nous", "vllm", "litellm", "openrouter"])
@pytest.mark.parametrize("history", [HISTORY, HISTORY[1:], HISTORY[:2], HISTORY[1:2]], ids=["system", "no-system",
                                                                                          "first-system", "first"])
def test_native_count_equals_the_rendered_request(hermes_like: tuple[Tokenizer, TokenCounter], fallback: TokenCounter,
                                                  history: list[dict[str, Any]], kind: str,
                                                  decision: ReasoningDecision) -> None:
    for counter in (hermes_like[1], fallback):
        planned, sent = planned_and_sent(counter, history, TOOLS, kind, decision)
        assert planned == sent


def test_tool_results_already_rendered_are_not_wrapped_again(fallback: TokenCounter) -> None:
    block = render_tool_result("get_weather", '{"temp_c": 18}')
    text = fallback.render_prompt([{"role": "user", "content": "hi"}, {"role": "tool", "content": block}])
    assert text.count("<tool_response>") == 1
    # a native result is rendered as Hermes reads it: the function's name looked up from the call id
    native = fallback.render_prompt(HISTORY[1:4])
    assert render_tool_result("get_weather", '{"temp_c": 18, "sky": "clear"}') in native
