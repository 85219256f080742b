"""The reasoning package's modules on their own: prompts, the kind-neutral history and budget builders, and the
``expect_reasoning`` splitter modes as properties (tests/test_reasoning.py covers the package-level API)."""

from __future__ import annotations

import copy
import hashlib
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hermes_proxy.reasoning.budget import continuation_payload, forced_answer_payload
from hermes_proxy.reasoning.history import clean_history
from hermes_proxy.reasoning.prompts import (
    DEEP_THINKING_PROMPT,
    THINK_CLOSE,
    has_deep_thinking_prompt,
    with_deep_thinking_prompt,
    without_deep_thinking_prompt,
)
from hermes_proxy.reasoning.splitter import ThinkSplitter

P = DEEP_THINKING_PROMPT
SYS = {"role": "system", "content": "Be brief."}
USER = {"role": "user", "content": "Hi"}

# ====================================================================================================================
# prompts
# ====================================================================================================================


def test_deep_thinking_prompt_is_the_model_cards() -> None:
    # pinned by digest, not by a second copy of the text: the model was trained on this exact prompt
    assert P.startswith("You are a deep thinking AI, ") and P.endswith(" response to the problem.")
    assert hashlib.sha256(P.encode()).hexdigest()[:16] == _DIGEST


_DIGEST = "58437a15695aa47f"  # sha256 of the model card's text, first 16 hex digits


def test_prompt_helpers() -> None:
    msgs = [SYS, USER]
    on = with_deep_thinking_prompt(msgs, insert=False)
    assert on[0] == {"role": "system", "content": P + "\n\nBe brief."} and on[1] is USER
    assert has_deep_thinking_prompt(on) and not has_deep_thinking_prompt(msgs) and not has_deep_thinking_prompt(None)
    assert with_deep_thinking_prompt(on, insert=True) is on  # already there
    assert without_deep_thinking_prompt(on) == msgs
    assert without_deep_thinking_prompt(msgs) is msgs
    assert with_deep_thinking_prompt([USER], insert=False) == [USER]
    assert with_deep_thinking_prompt([USER], insert=True) == [{"role": "system", "content": P}, USER]
    assert without_deep_thinking_prompt([{"role": "system", "content": P}, USER]) == [USER]
    # only system messages count
    assert not has_deep_thinking_prompt([{"role": "user", "content": P}])
    assert has_deep_thinking_prompt([{"role": "system", "content": [{"type": "text", "text": "x " + P}]}])


# ====================================================================================================================
# splitter: expect_reasoning, as properties
# ====================================================================================================================


def run(chunks: list[str], **kwargs: Any) -> tuple[str, str]:
    s = ThinkSplitter(**kwargs)
    rs, cs = zip(*[s.feed(c) for c in chunks], s.finish(), strict=False)
    return "".join(rs), "".join(cs)


def cut(text: str, points: list[int]) -> list[str]:
    marks = sorted({0, len(text), *(p % (len(text) + 1) for p in points)})
    return [text[a:b] for a, b in pairwise(marks)]


_no_close = st.text(max_size=30).filter(lambda t: THINK_CLOSE not in t and not t.lstrip().startswith("<think>"))
_points = st.lists(st.integers(min_value=0), max_size=12)


@given(r=_no_close, a=st.text(max_size=30), points=_points)
def test_expect_reasoning_closing_an_unopened_block(r: str, a: str, points: list[int]) -> None:
    # "reasoning</think>answer" from a template that prefilled <think>: any chunking gives what the whole gives
    text = r + THINK_CLOSE + a
    want = (r.strip(), a.lstrip())
    for unclosed in ("content", "reasoning"):
        assert run([text], expect_reasoning=True, unclosed=unclosed) == want
        assert run(cut(text, points), expect_reasoning=True, unclosed=unclosed) == want


@given(text=_no_close, points=_points)
def test_expect_reasoning_with_no_close_at_all(text: str, points: list[int]) -> None:
    # default: held to the end, then all content, unchanged (no </think>, no evidence of reasoning)
    assert run(cut(text, points), expect_reasoning=True) == ("", text)
    # unclosed="reasoning": streamed as reasoning, and reasoning at the end (cut by max_tokens)
    assert run(cut(text, points), expect_reasoning=True, unclosed="reasoning") == (text.strip(), "")


def test_expect_reasoning_holds_then_releases_at_finish() -> None:
    s = ThinkSplitter(expect_reasoning=True)
    assert s.feed(" partial </thi") == ("", "")
    assert not s.in_reasoning and s.phase == "start"
    assert s.finish() == ("", " partial </thi")
    assert not s.saw_reasoning and s.phase == "done"


# ====================================================================================================================
# history, budget: kind-neutral
# ====================================================================================================================

ASSISTANT = {"role": "assistant", "content": "<think>\nr\n</think>\n\nA", "reasoning_content": "r"}


def test_clean_history_flag() -> None:
    assert clean_history([USER, ASSISTANT], empty_think_prefix=False) == [USER, {"role": "assistant", "content": "A"}]
    assert clean_history([USER, ASSISTANT], empty_think_prefix=True)[1] == {"role": "assistant",
                                                                            "content": "<think> </think>A"}


def test_continuation_payload_is_kind_neutral() -> None:
    sent = {"model": "m", "messages": [USER], "max_completion_tokens": 9, "chat_template_kwargs": {"x": 1}}
    before = copy.deepcopy(sent)
    out = continuation_payload(sent, "so far", 40)
    assert sent == before
    assert out == {"model": "m", "max_tokens": 40, "continue_final_message": True, "add_generation_prompt": False,
                   "messages": [USER, {"role": "assistant", "content": "<think>\nso far\n</think>\n"}],
                   "chat_template_kwargs": {"x": 1, "thinking": True, "keep_cots": True}}
    with pytest.raises(ValueError):
        continuation_payload(sent, "r", 0)


def test_forced_answer_payload_takes_the_reasoning_off_payload() -> None:
    off = {"model": "m", "messages": [SYS, USER], "max_completion_tokens": 9, "reasoning": {"enabled": False}}
    before = copy.deepcopy(off)
    out = forced_answer_payload(off, " cut ", 7)
    assert off == before
    assert out["max_tokens"] == 7 and "max_completion_tokens" not in out and out["reasoning"] == {"enabled": False}
    assert out["messages"][0]["content"].startswith("Be brief.\n\nYou already started deliberating")
    assert "<reasoning>\ncut\n</reasoning>" in out["messages"][0]["content"] and out["messages"][1] is USER
    with pytest.raises(ValueError):
        forced_answer_payload(off, "r", 0)


