"""Hermes 4 reasoning: splitter, output shaping, toggle resolution (how each upstream kind expresses it: test_dialects)."""

from __future__ import annotations

import re
import sys
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hermes_proxy.errors import InvalidRequest, PolicyDenied
from hermes_proxy.reasoning import (
    DEEP_THINKING_PROMPT,
    THINK_CLOSE,
    THINK_OPEN,
    OutputShaper,
    ReasoningDecision,
    ThinkSplitter,
    resolve_reasoning,
    split_model_suffix,
)
from policies.types import TeamPolicy

P = DEEP_THINKING_PROMPT

# ====================================================================================================================
# splitter: reference implementation and helpers
# ====================================================================================================================

_OPENED = re.compile(r"\s*<think>(.*?)</think>\s*(.*)", re.S)
_OPENED_UNCLOSED = re.compile(r"\s*<think>(.*)", re.S)
_CLOSED_ONLY = re.compile(r"(.*?)</think>\s*(.*)", re.S)


def reference(text: str, expect: bool = False, unclosed: str = "content") -> tuple[str, str]:
    """The whole-text rule the streaming splitter must reproduce."""
    if m := _OPENED.fullmatch(text):
        return m.group(1).strip(), m.group(2)
    if m := _OPENED_UNCLOSED.fullmatch(text):
        return m.group(1).strip(), ""
    if expect:
        if m := _CLOSED_ONLY.fullmatch(text):
            return m.group(1).strip(), m.group(2)
        if unclosed == "reasoning":
            return text.strip(), ""
    return "", text


def run(chunks: list[str], expect: bool = False, unclosed: str = "content") -> tuple[str, str]:
    splitter = ThinkSplitter(expect, unclosed=unclosed)  # type: ignore[arg-type]
    rs, cs = [], []
    for chunk in chunks:
        r, c = splitter.feed(chunk)
        rs.append(r)
        cs.append(c)
    r, c = splitter.finish()
    rs.append(r)
    cs.append(c)
    return "".join(rs), "".join(cs)


def cut(text: str, points: list[int]) -> list[str]:
    marks = sorted({0, len(text), *(p % (len(text) + 1) for p in points)})
    return [text[a:b] for a, b in pairwise(marks)]


MODES = [(False, "content"), (True, "content"), (True, "reasoning")]

RECORDED = [
    "<think>\nThe user wants 2+2. That is 4.\n</think>\n\n2 + 2 = **4**.",
    "  \n<think>\n\n  indented first line\n\nsecond paragraph  \n\n</think>\n\n\n"
    "Answer with </think> and <think> inside.",
    "<think>\nLet me consider < and </ and </th and </thinking> here.\n</think>Done.",
    "<think>\nCut off by max_tokens in the middle of a thought about </thi",
    "<think></think>Straight answer.",
    "<think> </think>\n\nEmpty reasoning.",
    "Plain answer, no reasoning. Mentions <think> late.",
    "   Plain answer with leading spaces.",
    "<thinker>not a tag</thinker>",
    "<thin",
    "   ",
    "",
    "Dropped open tag: reasoning here.\n</think>\n\nThe answer.",
    "\n\nreasoning without open tag\n</think>",
    "日本語の推論 🙂 — ok\n</think>\n答え",
    "<think>\n日本語 🙂\u3000\n</think>\u3000答え\u2028",
]


def test_regex_whitespace_is_str_whitespace() -> None:
    # the reference uses \s, the splitter str.strip(): they must agree on every code point
    ws = re.compile(r"\s")
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        assert bool(ws.match(ch)) == ch.isspace(), hex(cp)


@pytest.mark.parametrize("text", RECORDED)
@pytest.mark.parametrize(("expect", "unclosed"), MODES)
def test_recorded_every_split_offset(text: str, expect: bool, unclosed: str) -> None:
    want = reference(text, expect, unclosed)
    assert run([text], expect, unclosed) == want
    assert run(list(text), expect, unclosed) == want  # one character at a time
    for i in range(len(text) + 1):
        assert run([text[:i], text[i:]], expect, unclosed) == want, i


@pytest.mark.parametrize("text", [t for t in RECORDED if len(t) < 70])
def test_recorded_every_pair_of_offsets(text: str) -> None:
    for expect, unclosed in MODES:
        want = reference(text, expect, unclosed)
        for i in range(len(text) + 1):
            for j in range(i, len(text) + 1):
                assert run([text[:i], text[i:j], text[j:]], expect, unclosed) == want, (i, j)


_fragments = st.sampled_from([
    THINK_OPEN, THINK_CLOSE, "<", "</", "<t", "<th", "<thi", "<thin", "<think", "</t", "</thi", "</think", "think>",
    ">", "\n", "\n\n", " ", "\t", "\r\n", "\u3000", "\x1c", "a", "b c", "é", "日本", "🙂", "<b>", "</b>",
])
_texts = st.lists(_fragments | st.text(max_size=6), max_size=24).map("".join)


@given(text=_texts, points=st.lists(st.integers(min_value=0), max_size=16), mode=st.sampled_from(MODES))
def test_any_chunking_matches_whole_and_reference(text: str, points: list[int], mode: tuple[bool, str]) -> None:
    expect, unclosed = mode
    whole = run([text], expect, unclosed)
    assert whole == reference(text, expect, unclosed)
    assert run(cut(text, points), expect, unclosed) == whole


@given(body=st.text(max_size=40), answer=st.text(max_size=20), points=st.lists(st.integers(min_value=0), max_size=10))
def test_think_shaped_text(body: str, answer: str, points: list[int]) -> None:
    text = f"<think>\n{body}\n</think>\n\n{answer}"
    assert run(cut(text, points)) == reference(text)


# --- streaming behaviour: what is released when --------------------------------------------------------------------


def test_holds_back_only_what_is_needed_to_decide() -> None:
    s = ThinkSplitter()
    assert s.feed("  ") == ("", "")
    assert s.feed("<th") == ("", "")
    assert s.feed("x and more") == ("", "  <thx and more")
    assert s.feed(" <think>") == ("", " <think>")
    s = ThinkSplitter()
    assert s.feed("H") == ("", "H")  # cannot start "<think>": released at once
    assert s.phase == "answer"


def test_reasoning_streams_and_trims_as_a_whole() -> None:
    s = ThinkSplitter()
    assert s.feed("<think>") == ("", "")
    assert s.in_reasoning and s.saw_reasoning
    assert s.feed("\n") == ("", "")
    assert s.feed("First") == ("First", "")
    assert s.feed(" thought\n\n") == (" thought", "")  # trailing whitespace held back
    assert s.feed("Second</th") == ("\n\nSecond", "")  # ...and released when more reasoning follows
    assert s.feed("ink>\n\n") == ("", "")
    assert s.phase == "answer" and not s.in_reasoning
    assert s.feed("\n") == ("", "")
    assert s.feed("Answer") == ("", "Answer")
    assert s.feed(" <think> stays </think>") == ("", " <think> stays </think>")
    assert s.finish() == ("", "")
    assert s.phase == "done"
    with pytest.raises(RuntimeError):
        s.feed("x")
    assert s.finish() == ("", "")


def test_partial_close_tag_released_when_it_is_not_one() -> None:
    s = ThinkSplitter()
    assert s.feed("<think>a") == ("a", "")
    assert s.feed(" </thi") == ("", "")  # the space waits: it may be the whitespace before </think>
    assert s.feed("s") == (" </this", "")
    s = ThinkSplitter()
    assert s.feed("<think>a </thi") == ("a", "")
    assert s.feed("s") == (" </this", "")


def test_stream_ending_in_reasoning_is_all_reasoning() -> None:
    s = ThinkSplitter()
    assert s.feed("<think>\nstill thinking </thi") == ("still thinking", "")
    assert s.finish() == (" </thi", "")


def test_long_whitespace_run_is_linear() -> None:
    # a degenerate newline loop must not make each chunk cost more than the last
    s = ThinkSplitter()
    assert s.feed("<think>a") == ("a", "")
    for _ in range(200_000):
        assert s.feed("\n") == ("", "")
    assert s.feed("b") == ("\n" * 200_000 + "b", "")
    for _ in range(1000):
        s.feed(" ")
    assert s.feed("</think>c") == ("", "c")


def test_expect_reasoning_holds_until_close() -> None:
    s = ThinkSplitter(expect_reasoning=True)
    assert s.feed("reasoning ") == ("", "")
    assert s.phase == "start"
    assert s.feed("more\n</thi") == ("", "")
    assert s.feed("nk>\n\nAnswer") == ("reasoning more", "Answer")
    assert s.feed(" goes on") == ("", " goes on")


def test_expect_reasoning_without_close_is_content() -> None:
    s = ThinkSplitter(expect_reasoning=True)
    assert s.feed("  Just an answer, ") == ("", "")
    assert s.feed("no tags.") == ("", "")
    assert s.finish() == ("", "  Just an answer, no tags.")
    assert not s.saw_reasoning


def test_expect_reasoning_with_open_tag_streams_normally() -> None:
    s = ThinkSplitter(expect_reasoning=True)
    assert s.feed("<think>\nabc") == ("abc", "")


def test_unclosed_reasoning_mode_streams_at_once() -> None:
    s = ThinkSplitter(expect_reasoning=True, unclosed="reasoning")
    assert s.feed("\nThinking") == ("Thinking", "")
    assert s.in_reasoning
    assert s.feed(" more</think>Answer") == (" more", "Answer")
    s = ThinkSplitter(expect_reasoning=True, unclosed="reasoning")
    assert s.feed("cut short ") == ("cut short", "")
    assert s.finish() == ("", "")


def test_bad_unclosed_value() -> None:
    with pytest.raises(ValueError):
        ThinkSplitter(True, unclosed="maybe")  # type: ignore[arg-type]


# ====================================================================================================================
# output shaping
# ====================================================================================================================


def shape_all(fmt: str, pairs: list[tuple[str, str]]) -> tuple[list[dict[str, str]], OutputShaper]:
    shaper = OutputShaper(fmt)  # type: ignore[arg-type]
    out = [shaper.shape(r, c) for r, c in pairs]
    out.append(shaper.finish())
    return out, shaper


PAIRS = [("", ""), ("Let me", ""), (" think.", ""), ("", "The"), ("", " answer."), ("", "")]


def test_parsed() -> None:
    out, shaper = shape_all("parsed", [*PAIRS, ("late", "both")])
    assert out == [
        {},
        {"reasoning_content": "Let me", "reasoning": "Let me"},
        {"reasoning_content": " think.", "reasoning": " think."},
        {"content": "The"},
        {"content": " answer."},
        {},
        {"reasoning_content": "late", "reasoning": "late", "content": "both"},
        {},
    ]
    assert shaper.reasoning_text == "Let me think.late"
    assert shaper.content_text == "The answer.both"


def test_raw() -> None:
    out, shaper = shape_all("raw", PAIRS)
    assert out == [{}, {"content": "<think>\nLet me"}, {"content": " think."}, {"content": "\n</think>\n\nThe"},
                   {"content": " answer."}, {}, {}]
    assert "".join(d.get("content", "") for d in out) == "<think>\nLet me think.\n</think>\n\nThe answer."
    assert shaper.reasoning_text == "Let me think." and shaper.content_text == "The answer."


def test_raw_reasoning_and_content_in_one_piece_and_unclosed() -> None:
    shaper = OutputShaper("raw")
    assert shaper.shape("r", "c") == {"content": "<think>\nr\n</think>\n\nc"}
    shaper = OutputShaper("raw")
    assert shaper.shape("cut", "") == {"content": "<think>\ncut"}
    assert shaper.finish() == {"content": "\n</think>"}
    assert shaper.finish() == {}
    shaper = OutputShaper("raw")
    assert shaper.shape("", "no reasoning") == {"content": "no reasoning"}
    assert shaper.finish() == {}


def test_hidden() -> None:
    out, shaper = shape_all("hidden", PAIRS)
    assert out == [{}, {}, {}, {"content": "The"}, {"content": " answer."}, {}, {}]
    assert shaper.reasoning_text == "Let me think."  # still counted
    assert shaper.has_reasoning and shaper.has_content


def test_shaper_flags_and_bad_format() -> None:
    shaper = OutputShaper()
    assert not shaper.has_reasoning and not shaper.has_content
    assert shaper.reasoning_text == "" and shaper.content_text == ""
    with pytest.raises(ValueError):
        OutputShaper("xml")  # type: ignore[arg-type]


# ====================================================================================================================
# toggle resolution
# ====================================================================================================================

ALLOW = TeamPolicy(name="eng")
DENY = TeamPolicy(name="interns", reasoning="deny")
FORCE = TeamPolicy(name="research", reasoning="force")


def resolve(body: dict[str, Any] | None = None, header: str | None = None, suffix: str | None = None,
            policy: TeamPolicy = ALLOW, model_default: bool = False) -> ReasoningDecision:
    return resolve_reasoning(body or {}, header, suffix, policy, model_default)


ON_BODIES: list[dict[str, Any]] = [
    {"reasoning": True},
    {"reasoning": {"enabled": True}},
    {"reasoning": {"effort": "high"}},
    {"reasoning": {"max_tokens": 1000}},
    {"reasoning": {"enabled": True, "effort": "low", "max_tokens": 50, "exclude": False}},
    {"reasoning_effort": "minimal"},
    {"reasoning_effort": "medium"},
    {"chat_template_kwargs": {"thinking": True}},
    {"reasoning": True, "reasoning_effort": "high", "chat_template_kwargs": {"thinking": True}},
    {"messages": [{"role": "system", "content": f"Be brief.\n\n{P}"}]},
    {"messages": [{"role": "system", "content": [{"type": "text", "text": P}]}]},
]
OFF_BODIES: list[dict[str, Any]] = [
    {"reasoning": False},
    {"reasoning": {"enabled": False}},
    {"reasoning": {"effort": "none"}},
    {"reasoning_effort": "none"},
    {"chat_template_kwargs": {"thinking": False}},
    {"reasoning": False, "reasoning_effort": "none"},
    {"reasoning": False, "messages": [{"role": "system", "content": P}]},  # explicit field beats the prompt
]


@pytest.mark.parametrize("body", ON_BODIES)
def test_body_on(body: dict[str, Any]) -> None:
    d = resolve(body, header="off", suffix="fast")
    assert (d.enabled, d.source) == (True, "request")
    assert d.header_value() == "on; source=request"


@pytest.mark.parametrize("body", OFF_BODIES)
def test_body_off(body: dict[str, Any]) -> None:
    d = resolve(body, header="on", suffix="thinking", model_default=True)
    assert (d.enabled, d.source) == (False, "request")


def test_precedence_chain() -> None:
    assert resolve(header="ON", suffix="fast").enabled is True
    assert resolve(header="ON", suffix="fast").source == "header"
    assert resolve(header=" 0 ", suffix="thinking").header_value() == "off; source=header"
    for value in ("on", "true", "1", "On", "TRUE"):
        assert resolve(header=value).enabled is True
    for value in ("off", "false", "0", "OFF"):
        assert resolve(header=value, model_default=True).enabled is False
    assert resolve(suffix="thinking").header_value() == "on; source=alias"
    assert resolve(suffix="fast", policy=TeamPolicy(name="t", reasoning_default=True)).enabled is False
    team_on = TeamPolicy(name="t", reasoning_default=True)
    assert resolve(policy=team_on).header_value() == "on; source=team"
    team_off = TeamPolicy(name="t", reasoning_default=False)
    assert resolve(policy=team_off, model_default=True).header_value() == "off; source=team"
    assert resolve(model_default=True).header_value() == "on; source=model"
    assert resolve().header_value() == "off; source=model"


def test_policy_wins_when_client_does_not_ask() -> None:
    assert resolve(policy=FORCE).header_value() == "on; reason=policy"
    assert resolve(policy=DENY, model_default=True).header_value() == "off; reason=policy"
    # asking the same as the policy is fine
    assert resolve({"reasoning": True}, policy=FORCE).source == "policy"
    assert resolve(header="off", policy=DENY).source == "policy"
    assert resolve(suffix="fast", policy=DENY).enabled is False
    # the team default does not count as an explicit ask
    assert resolve(policy=TeamPolicy(name="x", reasoning="deny", reasoning_default=True)).enabled is False


@pytest.mark.parametrize(("kwargs", "how"), [
    ({"body": {"reasoning": True}}, '"reasoning": true in the body'),
    ({"body": {"reasoning_effort": "high"}}, '"reasoning_effort": "high"'),
    ({"body": {"reasoning": {"max_tokens": 100}}}, '"max_tokens": 100'),
    ({"body": {"chat_template_kwargs": {"thinking": True}}}, "chat_template_kwargs"),
    ({"body": {"messages": [{"role": "system", "content": P}]}}, "deep-thinking system prompt"),
    ({"header": "on"}, "X-Hermes-Reasoning: on"),
    ({"suffix": "thinking"}, "':thinking'"),
])
def test_deny_refuses_explicit_on(kwargs: dict[str, Any], how: str) -> None:
    with pytest.raises(PolicyDenied) as info:
        resolve(policy=DENY, **kwargs)
    err = info.value
    assert err.status == 403 and err.code == "policy_denied"
    assert "'interns'" in err.message and '"deny"' in err.message and how in err.message


@pytest.mark.parametrize(("kwargs", "how", "param"), [
    ({"body": {"reasoning": False}}, '"reasoning": false in the body', "reasoning"),
    ({"body": {"reasoning_effort": "none"}}, '"reasoning_effort": "none"', "reasoning_effort"),
    ({"header": "0"}, "X-Hermes-Reasoning: 0", "X-Hermes-Reasoning"),
    ({"suffix": "fast"}, "':fast'", "model"),
])
def test_force_refuses_explicit_off(kwargs: dict[str, Any], how: str, param: str) -> None:
    with pytest.raises(PolicyDenied) as info:
        resolve(policy=FORCE, **kwargs)
    assert "'research'" in info.value.message and '"force"' in info.value.message and how in info.value.message
    assert info.value.param == param


def test_only_the_effective_ask_counts_against_policy() -> None:
    # the body (off) overrides the header (on): no 403 under deny
    assert resolve({"reasoning": False}, header="on", policy=DENY).enabled is False


@pytest.mark.parametrize(("body", "params"), [
    ({"reasoning": True, "reasoning_effort": "none"}, ("reasoning", "reasoning_effort")),
    ({"reasoning": {"enabled": False, "effort": "high"}}, ("reasoning.enabled", "reasoning.effort")),
    ({"reasoning": {"enabled": False, "max_tokens": 10}}, ("reasoning.enabled", "reasoning.max_tokens")),
    ({"reasoning_effort": "low", "chat_template_kwargs": {"thinking": False}},
     ("reasoning_effort", "chat_template_kwargs.thinking")),
    ({"reasoning": {"max_tokens": 10}, "max_reasoning_tokens": 20}, ("reasoning.max_tokens", "max_reasoning_tokens")),
    ({"reasoning": {"exclude": True}, "reasoning_format": "raw"}, ("reasoning.exclude", "reasoning_format")),
])
def test_conflicting_body_fields(body: dict[str, Any], params: tuple[str, str]) -> None:
    with pytest.raises(InvalidRequest) as info:
        resolve(body)
    assert info.value.status == 400
    for param in params:
        assert param in info.value.message
    assert info.value.param == params[1]


@pytest.mark.parametrize(("body", "param"), [
    ({"reasoning": "yes"}, "reasoning"),
    ({"reasoning": 1}, "reasoning"),
    ({"reasoning": {"enabled": "true"}}, "reasoning.enabled"),
    ({"reasoning": {"effort": "max"}}, "reasoning.effort"),
    ({"reasoning": {"max_tokens": 0}}, "reasoning.max_tokens"),
    ({"reasoning": {"max_tokens": True}}, "reasoning.max_tokens"),
    ({"reasoning": {"max_tokens": 1.5}}, "reasoning.max_tokens"),
    ({"reasoning": {"exclude": "no"}}, "reasoning.exclude"),
    ({"reasoning": {"summary": "auto"}}, "reasoning.summary"),
    ({"reasoning_effort": True}, "reasoning_effort"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"chat_template_kwargs": []}, "chat_template_kwargs"),
    ({"chat_template_kwargs": {"thinking": "on"}}, "chat_template_kwargs.thinking"),
    ({"max_reasoning_tokens": -5}, "max_reasoning_tokens"),
    ({"max_reasoning_tokens": "100"}, "max_reasoning_tokens"),
    ({"reasoning_format": "xml"}, "reasoning_format"),
    ({"reasoning_format": 1}, "reasoning_format"),
])
def test_invalid_body_values(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        resolve(body)
    assert info.value.param == param and info.value.status == 400
    assert param.split(".")[-1] in info.value.message


def test_validation_happens_even_when_policy_decides() -> None:
    with pytest.raises(InvalidRequest):
        resolve({"reasoning_format": "xml"}, policy=FORCE)
    with pytest.raises(InvalidRequest):
        resolve(header="maybe", policy=DENY)


@pytest.mark.parametrize("value", ["maybe", "", "yes", "on;"])
def test_bad_header(value: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        resolve(header=value)
    assert info.value.param == "X-Hermes-Reasoning" and "on or off" in info.value.message


def test_format_and_budget() -> None:
    assert resolve().format == "parsed"
    assert resolve({"reasoning_format": "raw"}).format == "raw"
    assert resolve({"reasoning": {"exclude": True}}).format == "hidden"
    assert resolve({"reasoning": {"exclude": True}}).enabled is False  # exclude alone does not switch it on
    assert resolve({"reasoning": {"exclude": True, "enabled": True}, "reasoning_format": "hidden"}).format == "hidden"
    assert resolve({"reasoning": {"max_tokens": 800}}).max_reasoning_tokens == 800
    assert resolve({"max_reasoning_tokens": 900}, header="on").max_reasoning_tokens == 900
    assert resolve({"reasoning": {"max_tokens": 5}, "max_reasoning_tokens": 5}).max_reasoning_tokens == 5
    # a budget alone does not switch reasoning on, and an off decision carries no budget
    assert resolve({"max_reasoning_tokens": 900}).enabled is False
    assert resolve({"max_reasoning_tokens": 900}).max_reasoning_tokens is None
    assert resolve({"reasoning": None, "reasoning_effort": None}, model_default=True).source == "model"


def test_split_model_suffix() -> None:
    assert split_model_suffix("hermes-4-405b:thinking") == ("hermes-4-405b", "thinking")
    assert split_model_suffix("hermes-4-405b:fast") == ("hermes-4-405b", "fast")
    assert split_model_suffix("hermes-4-405b:Thinking") == ("hermes-4-405b", "thinking")
    assert split_model_suffix("hermes-4-405b") == ("hermes-4-405b", None)
    assert split_model_suffix("ns/m:free", known={"ns/m:free"}) == ("ns/m:free", None)
    for bad in ("hermes-4-405b:turbo", "hermes-4-405b:", ":thinking"):
        with pytest.raises(InvalidRequest) as info:
            split_model_suffix(bad)
        assert ":thinking" in info.value.message and ":fast" in info.value.message
        assert info.value.param == "model"
    with pytest.raises(InvalidRequest):
        resolve(suffix="turbo")
