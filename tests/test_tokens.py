"""Token counting: the Hermes 4 template counted against an independently built reference, tokenizer.json -> tiktoken
checked against the ``tokenizers`` library, and the hub fetch with its cache and its offline fallback."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

import hermes_proxy.tokens.encodings as encodings_module
from hermes_proxy.config import TokensConfig
from hermes_proxy.errors import ConfigError
from hermes_proxy.reasoning.prompts import DEEP_THINKING_PROMPT
from hermes_proxy.tokens import TokenCounter, load_token_counter

# --- an independent reference: cl100k ranks + Llama 3 specials, and the template assembled by hand -----------------

# Meta's Llama 3 split pattern, written out here again on purpose (not imported from the code under test).
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIALS = {
    "<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|start_header_id|>": 128006,
    "<|end_header_id|>": 128007, "<|eom_id|>": 128008, "<|eot_id|>": 128009, "<|python_tag|>": 128010,
    # Hermes 4's added tokens named by its model card (the fallback places them after Llama 3's 256 specials)
    "<tool_call>": 128256, "</tool_call>": 128257,
}
HERMES = "You are Hermes, created by Nous Research."
DEEP = DEEP_THINKING_PROMPT

ENGLISH = ("The quick brown fox jumps over the lazy dog. It's 2025, and budgets aren't optional anymore!\n\n"
           "Reasoning models spend thousands of tokens before they answer.")
CODE = 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n    return a + b  # 42\n\nprint(add(1, 2))\n'
CJK = "東京は日本の首都です。我们今天讨论一下预算和令牌的计算方法。한국어도 조금 있습니다."


@pytest.fixture(scope="module")
def reference() -> tiktoken.Encoding:
    spec = importlib.util.find_spec("litellm")
    assert spec is not None and spec.submodule_search_locations
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    path = Path(spec.submodule_search_locations[0], "litellm_core_utils", "tokenizers",
                hashlib.sha1(url.encode()).hexdigest())
    ranks = {}
    for line in path.read_text().splitlines():
        token, rank = line.split(" ")
        ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding("reference", pat_str=LLAMA3_SPLIT, mergeable_ranks=ranks, special_tokens=SPECIALS)


@pytest.fixture(scope="module")
def counter(tmp_path_factory: pytest.TempPathFactory) -> TokenCounter:
    return load_token_counter(TokensConfig(), data_dir=tmp_path_factory.mktemp("data"))


def ref_count(reference: tiktoken.Encoding, text: str) -> int:
    return len(reference.encode(text, allowed_special="all"))


def turn(role: str, text: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>"


GEN = "<|start_header_id|>assistant<|end_header_id|>\n\n"


# --- the fallback counter -------------------------------------------------------------------------------------------


def test_fallback_is_cl100k_with_llama3_special_ids(counter: TokenCounter) -> None:
    assert not counter.exact
    assert counter.name.startswith("cl100k_base (approximate")
    assert counter.warning is None
    for text, rank in SPECIALS.items():
        assert counter.encoding.encode(text, allowed_special="all") == [rank]


def test_counter_is_immutable(counter: TokenCounter) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        counter.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("text", [ENGLISH, CODE, CJK, "", "<|eot_id|> typed by a user"], ids=["en", "code", "cjk",
                                                                                               "empty", "special"])
def test_single_user_message(counter: TokenCounter, reference: tiktoken.Encoding, text: str) -> None:
    expected = "<|begin_of_text|>" + turn("system", HERMES) + turn("user", text) + GEN
    assert counter.render_prompt([{"role": "user", "content": text}]) == expected
    assert counter.count_prompt([{"role": "user", "content": text}]) == ref_count(reference, expected)
    assert counter.count_text(text) == ref_count(reference, text)


def test_multi_turn_history_with_caller_system(counter: TokenCounter, reference: tiktoken.Encoding) -> None:
    messages = [
        {"role": "system", "content": "Answer in one line."},
        {"role": "user", "content": ENGLISH},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": [{"type": "text", "text": CODE}, {"type": "image_url", "image_url": {"url": "x"}},
                                     {"type": "text", "text": CJK}]},
        {"role": "assistant", "content": None},
        {"role": "user", "content": "And now?"},
    ]
    expected = ("<|begin_of_text|>" + turn("system", "Answer in one line.") + turn("user", ENGLISH)
                + turn("assistant", "Noted.") + turn("user", CODE + CJK) + turn("assistant", "")
                + turn("user", "And now?") + GEN)
    assert counter.render_prompt(messages) == expected
    assert counter.count_prompt(messages) == ref_count(reference, expected)


def test_developer_role_is_the_system_role(counter: TokenCounter) -> None:
    as_developer = [{"role": "developer", "content": "Be terse."}, {"role": "user", "content": "hi"}]
    as_system = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}]
    assert counter.render_prompt(as_developer) == counter.render_prompt(as_system)


def test_injected_system_prompt_is_prepended_or_becomes_the_system(counter: TokenCounter,
                                                                   reference: tiktoken.Encoding) -> None:
    alone = [{"role": "user", "content": "2+2?"}]
    expected = "<|begin_of_text|>" + turn("system", DEEP) + turn("user", "2+2?") + GEN
    assert counter.count_prompt(alone, system_prompt=DEEP) == ref_count(reference, expected)

    with_system = [{"role": "system", "content": "Be terse."}, *alone]
    expected = "<|begin_of_text|>" + turn("system", DEEP + "\n\nBe terse.") + turn("user", "2+2?") + GEN
    assert counter.render_prompt(with_system, system_prompt=DEEP) == expected
    assert counter.count_prompt(with_system, system_prompt=DEEP) == ref_count(reference, expected)
    assert counter.count_prompt(with_system, system_prompt=DEEP) > counter.count_prompt(with_system)

    already = [{"role": "system", "content": DEEP + "\n\nBe terse."}, *alone]
    assert counter.render_prompt(already, system_prompt=DEEP) == expected


def test_thinking_flag_rewrites_history_and_picks_the_deep_prompt(counter: TokenCounter,
                                                                 reference: tiktoken.Encoding) -> None:
    messages = [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "<think>\nlong reasoning\n</think>\nA1"},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "A2 without reasoning"},
        {"role": "user", "content": "Q3"},
    ]
    expected = ("<|begin_of_text|>" + turn("system", DEEP) + turn("user", "Q1")
                + turn("assistant", "<think> </think>\nA1") + turn("user", "Q2")
                + turn("assistant", "<think> </think>A2 without reasoning") + turn("user", "Q3") + GEN)
    assert counter.render_prompt(messages, thinking=True) == expected
    assert counter.count_prompt(messages, thinking=True) == ref_count(reference, expected)


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]


def test_tools_calls_and_results(counter: TokenCounter, reference: tiktoken.Encoding) -> None:
    messages = [
        {"role": "system", "content": "You help travellers."},
        {"role": "user", "content": "Weather in Paris and Tokyo?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "東京"}}},
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp_c": 18}'},
        {"role": "tool", "tool_call_id": "c2", "content": '{"temp_c": 24}'},
    ]
    system = ("You help travellers.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
              "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
              + json.dumps(TOOLS[0], ensure_ascii=False)
              + "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
                "<tool_call></tool_call> XML tags:\n<tool_call>\n"
                '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')
    calls = ('Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
             '<tool_call>\n{"name": "get_weather", "arguments": {"city": "東京"}}\n</tool_call>')
    results = ('<tool_response>\n{"name": "get_weather", "content": {"temp_c": 18}}\n</tool_response>\n'
               '<tool_response>\n{"name": "get_weather", "content": {"temp_c": 24}}\n</tool_response>')
    expected = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n" + system + "<|eot_id|>"
                + turn("user", "Weather in Paris and Tokyo?") + turn("assistant", calls) + turn("tool", results) + GEN)
    assert counter.render_prompt(messages, TOOLS) == expected
    assert counter.count_prompt(messages, TOOLS) == ref_count(reference, expected)
    assert counter.count_prompt(messages, TOOLS) > counter.count_prompt(messages)


def test_count_completion(counter: TokenCounter, reference: tiktoken.Encoding) -> None:
    reasoning, answer = "The user asks 2+2. That is 4.", "4"
    think = f"<think>\n{reasoning}\n</think>\n"
    completion, in_reasoning = counter.count_completion(reasoning, answer)
    assert completion == ref_count(reference, think + answer + "<|eot_id|>")
    assert in_reasoning == ref_count(reference, think)
    assert 0 < in_reasoning < completion

    assert counter.count_completion("", answer) == (ref_count(reference, answer + "<|eot_id|>"), 0)

    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    completion, in_reasoning = counter.count_completion("", "", tool_calls=[call])
    expected = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call><|eot_id|>'
    assert (completion, in_reasoning) == (ref_count(reference, expected), 0)


def test_cjk_is_overcounted_by_the_approximation_not_by_the_template(counter: TokenCounter) -> None:
    # The fallback's caveat, made visible: CJK costs about one token per character in cl100k.
    assert counter.count_text(CJK) > len(CJK) * 0.6


def test_loading_neither_imports_litellm_nor_touches_the_environment(tmp_path: Path) -> None:
    code = (
        "import os, sys; from pathlib import Path; before = dict(os.environ)\n"
        "from hermes_proxy.tokens import load_token_counter; from hermes_proxy.config import TokensConfig\n"
        f"c = load_token_counter(TokensConfig(), data_dir=Path({str(tmp_path)!r}))\n"
        "assert c.count_text('hello world') == 2\n"
        "assert 'litellm' not in sys.modules, 'litellm imported'\n"
        "assert dict(os.environ) == before, 'environment changed'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=Path(__file__).resolve().parent.parent)


def test_no_tokenizer_anywhere_is_a_clear_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encodings_module, "cl100k_candidates", lambda: [tmp_path / "nothing-here"])
    with pytest.raises(ConfigError) as info:
        load_token_counter(TokensConfig(), data_dir=tmp_path)
    assert "tokens.tokenizer_path" in str(info.value) and "nothing-here" in str(info.value)


def test_a_corrupt_cl100k_copy_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"SGVsbG8= 0\n")
    monkeypatch.setattr(encodings_module, "cl100k_candidates", lambda: [bad])
    with pytest.raises(ConfigError, match="checksum mismatch"):
        load_token_counter(TokensConfig(), data_dir=tmp_path)


# --- tokenizer.json -> tiktoken, checked against the tokenizers library ---------------------------------------------

TRAIN_SPECIALS = ["<|begin_of_text|>", "<|eot_id|>", "<think>"]


def _training_corpus() -> list[str]:
    rng = random.Random(7)
    words = ["the", "budget", "token", "reasoning", "Hermes", "proxy", "upstream", "don't", "it's", "    return",
             "def", "x = 1", "2025", "東京", "日本語", "首都", "예산", "можно", "naïve", "🙂", "\n", "\t", "{}", "()"]
    return ["".join(rng.choice(words) + rng.choice([" ", "", ", ", ".\n", "  "]) for _ in range(40))
            for _ in range(2000)]


def _train(pre_tokenizer: Any) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=TRAIN_SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_training_corpus(), trainer)
    return tok


PRE_TOKENIZERS = {
    # Llama 3's own layout: a Split regex, then ByteLevel without its own regex
    "llama3-split": lambda: pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ]),
    # GPT-2 layout: ByteLevel with its built-in regex
    "gpt2-bytelevel": lambda: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
}


@pytest.fixture(scope="module", params=sorted(PRE_TOKENIZERS))
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Tokenizer, TokenCounter]:
    tok = _train(PRE_TOKENIZERS[request.param]())
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    counter = load_token_counter(TokensConfig(tokenizer_path=path), data_dir=path.parent)
    return tok, counter


def test_trained_tokenizer_loads_as_exact(trained: tuple[Tokenizer, TokenCounter]) -> None:
    tok, counter = trained
    assert counter.exact and "tokenizer.json" in counter.name
    for special in TRAIN_SPECIALS:
        assert counter.encoding.encode(special, allowed_special="all") == [tok.token_to_id(special)]


NEAR_TRAINING = list("the budget token 東京日本語首都 예산 можно naïve 🙂\n\t'sd 0123456789{}()")
texts = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.text(alphabet=st.sampled_from(NEAR_TRAINING), max_size=60),
        st.sampled_from([*TRAIN_SPECIALS, "it's", " don't", "    return x\n", "\n\n\n", "   "]),
    ),
    max_size=8,
).map("".join)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts)
def test_converted_ids_equal_the_tokenizers_library(trained: tuple[Tokenizer, TokenCounter], text: str) -> None:
    tok, counter = trained
    assert counter.encoding.encode(text, allowed_special="all") == tok.encode(text, add_special_tokens=False).ids


def test_corpus_ids_equal_the_tokenizers_library(trained: tuple[Tokenizer, TokenCounter]) -> None:
    tok, counter = trained
    for text in _training_corpus()[:300]:
        assert counter.encoding.encode(text, allowed_special="all") == tok.encode(text, add_special_tokens=False).ids


def _tokenizer_json(path: Path, **changes: Any) -> Path:
    data = json.loads(Tokenizer(models.BPE()).to_str())
    data.update(changes)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(("changes", "message"), [
    ({"model": {"type": "WordPiece", "vocab": {}}}, "only byte-level BPE"),
    ({"normalizer": {"type": "NFC"}}, "normalizer"),
    ({"pre_tokenizer": {"type": "Whitespace"}}, "byte-level"),
])
def test_unsupported_tokenizer_json_is_a_config_error(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    path = _tokenizer_json(tmp_path / "tokenizer.json", **changes)
    with pytest.raises(ConfigError, match=message) as info:
        load_token_counter(TokensConfig(tokenizer_path=path), data_dir=tmp_path)
    assert info.value.key == "tokens.tokenizer_path"


def test_a_vocab_that_is_not_byte_level_is_a_config_error(tmp_path: Path) -> None:
    vocab = {chr(0x100 + b) if b < 33 else chr(b): b for b in range(256)}  # not GPT-2's byte map
    vocab["a b"] = 256
    path = _tokenizer_json(tmp_path / "tokenizer.json", model={"type": "BPE", "vocab": vocab, "merges": []},
                           pre_tokenizer={"type": "ByteLevel", "add_prefix_space": False, "use_regex": True})
    with pytest.raises(ConfigError, match="not byte-level"):
        load_token_counter(TokensConfig(tokenizer_path=path), data_dir=tmp_path)


def test_not_json_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text("{ not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_token_counter(TokensConfig(tokenizer_path=path), data_dir=tmp_path)


# --- fetching from the hub --------------------------------------------------------------------------------------------

REPO = "NousResearch/Hermes-4-405B"
HUB_URL = f"https://huggingface.co/{REPO}/resolve/main/tokenizer.json"


@pytest.fixture(scope="module")
def tokenizer_bytes() -> bytes:
    return _train(PRE_TOKENIZERS["llama3-split"]()).to_str().encode()


def test_fetch_caches_and_the_second_load_does_not_fetch(tmp_path: Path, tokenizer_bytes: bytes) -> None:
    config = TokensConfig(hf_repo=REPO, fetch=True)
    with respx.mock(assert_all_called=True) as mock:
        # the hub answers with a redirect to its CDN, as it really does
        mock.get(HUB_URL).mock(return_value=httpx.Response(302, headers={"Location": "https://cdn.example/tok"}))
        cdn = mock.get("https://cdn.example/tok").mock(return_value=httpx.Response(200, content=tokenizer_bytes))
        first = load_token_counter(config, data_dir=tmp_path)
        assert cdn.call_count == 1
    cached = tmp_path / "tokenizers" / REPO / "tokenizer.json"
    assert cached.read_bytes() == tokenizer_bytes
    assert first.exact and first.warning is None and REPO in first.name
    assert not list(cached.parent.glob(".tokenizer-*"))  # no temporary file left behind

    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        route = mock.get(HUB_URL)
        second = load_token_counter(config, data_dir=tmp_path)
        assert route.call_count == 0
    assert second.exact
    assert second.count_text("the budget token") == first.count_text("the budget token")


def test_cached_tokenizer_is_used_without_fetch(tmp_path: Path, tokenizer_bytes: bytes) -> None:
    cached = tmp_path / "tokenizers" / REPO / "tokenizer.json"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(tokenizer_bytes)
    with respx.mock(assert_all_mocked=True):
        counter = load_token_counter(TokensConfig(hf_repo=REPO, fetch=False), data_dir=tmp_path)
    assert counter.exact


def test_network_error_falls_back_with_a_reason(tmp_path: Path) -> None:
    with respx.mock(assert_all_mocked=True) as mock:
        mock.get(HUB_URL).mock(side_effect=httpx.ConnectError("Name or service not known"))
        counter = load_token_counter(TokensConfig(hf_repo=REPO, fetch=True), data_dir=tmp_path)
    assert not counter.exact
    assert counter.warning is not None
    assert REPO in counter.warning and "ConnectError" in counter.warning and "cl100k_base" in counter.warning
    assert not (tmp_path / "tokenizers" / REPO / "tokenizer.json").exists()


def test_http_error_falls_back_with_a_reason(tmp_path: Path) -> None:
    with respx.mock(assert_all_mocked=True) as mock:
        mock.get(HUB_URL).mock(return_value=httpx.Response(401))
        counter = load_token_counter(TokensConfig(hf_repo=REPO, fetch=True), data_dir=tmp_path)
    assert not counter.exact and counter.warning is not None and "401" in counter.warning


def test_garbage_from_the_hub_is_not_cached(tmp_path: Path) -> None:
    with respx.mock(assert_all_mocked=True) as mock:
        mock.get(HUB_URL).mock(return_value=httpx.Response(200, text="<html>rate limited</html>"))
        counter = load_token_counter(TokensConfig(hf_repo=REPO, fetch=True), data_dir=tmp_path)
    assert not counter.exact and counter.warning is not None and "not valid JSON" in counter.warning
    assert not (tmp_path / "tokenizers" / REPO / "tokenizer.json").exists()


def test_fetch_disabled_does_not_touch_the_network(tmp_path: Path) -> None:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        route = mock.get(HUB_URL)
        counter = load_token_counter(TokensConfig(hf_repo=REPO, fetch=False), data_dir=tmp_path)
        assert route.call_count == 0
    assert not counter.exact and counter.warning is not None and "tokens.fetch is false" in counter.warning


def test_corrupt_cache_is_fetched_again(tmp_path: Path, tokenizer_bytes: bytes) -> None:
    cached = tmp_path / "tokenizers" / REPO / "tokenizer.json"
    cached.parent.mkdir(parents=True)
    cached.write_text("{ truncated")
    with respx.mock(assert_all_mocked=True) as mock:
        mock.get(HUB_URL).mock(return_value=httpx.Response(200, content=tokenizer_bytes))
        counter = load_token_counter(TokensConfig(hf_repo=REPO, fetch=True), data_dir=tmp_path)
    assert counter.exact and cached.read_bytes() == tokenizer_bytes


@pytest.mark.parametrize("repo", ["../../etc", "no-slash", "a/b/c", "/abs/path"])
def test_a_bad_repo_name_is_a_config_error(tmp_path: Path, repo: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_token_counter(TokensConfig(hf_repo=repo, fetch=True), data_dir=tmp_path)
    assert info.value.key == "tokens.hf_repo"
