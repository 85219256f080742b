"""Each upstream kind's dialect: how the reasoning decision, history and a reasoning budget are expressed.

These are the per-kind tests of the former reasoning module, run through each kind's dialect."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hermes_proxy.config import Route, UpstreamConfig
from hermes_proxy.reasoning import DEEP_THINKING_PROMPT, THINK_CLOSE, ReasoningDecision, strip_think_block
from hermes_proxy.upstreams import dialect_for
from tests.test_reasoning import OFF_BODIES, ON_BODIES, resolve

P = DEEP_THINKING_PROMPT
ROUTE = Route(upstream="u", model="m")


def apply_reasoning(payload: dict[str, Any], kind: str, decision: ReasoningDecision,
                    route: Route = ROUTE) -> dict[str, Any]:
    return dialect_for(UpstreamConfig(name="u", kind=kind)).with_reasoning(payload, decision, route)  # type: ignore[arg-type]


def clean_history(messages: list[Any], kind: str, enabled: bool) -> list[Any]:
    return dialect_for(UpstreamConfig(name="u", kind=kind)).history(messages, enabled)  # type: ignore[arg-type]


def follow_up(payload: dict[str, Any], kind: str, reasoning: str, remaining: int) -> dict[str, Any]:
    dialect = dialect_for(UpstreamConfig(name="u", kind=kind))  # type: ignore[arg-type]
    return dialect.budget_follow_up(payload, reasoning, remaining, ROUTE)


# ====================================================================================================================
# upstream mapping
# ====================================================================================================================

ON = ReasoningDecision(True, "request")
OFF = ReasoningDecision(False, "request")
SYS = {"role": "system", "content": "Be brief."}
USER = {"role": "user", "content": "hi"}


def payload(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages), "max_tokens": 100, **extra}


def test_vllm_on_with_system() -> None:
    assert apply_reasoning(payload(SYS, USER), "vllm", ON) == {
        "model": "m",
        "messages": [{"role": "system", "content": P + "\n\nBe brief."}, USER],
        "max_tokens": 100,
        "chat_template_kwargs": {"thinking": True},
        "skip_special_tokens": False,
    }


def test_vllm_on_without_system_leaves_it_to_the_template() -> None:
    assert apply_reasoning(payload(USER, chat_template_kwargs={"keep": 1, "thinking": False}), "vllm", ON) == {
        "model": "m", "messages": [USER], "max_tokens": 100,
        "chat_template_kwargs": {"keep": 1, "thinking": True}, "skip_special_tokens": False,
    }


def test_vllm_off() -> None:
    assert apply_reasoning(payload(SYS, USER, reasoning_effort="none"), "vllm", OFF) == {
        "model": "m", "messages": [SYS, USER], "max_tokens": 100, "chat_template_kwargs": {"thinking": False},
    }


def test_openrouter() -> None:
    budget = ReasoningDecision(True, "request", "hidden", 2000)
    body = payload(SYS, USER, reasoning={"effort": "high", "exclude": True, "max_tokens": 2000},
                   reasoning_format="hidden")
    # OpenRouter documents reasoning.max_tokens for Hermes 4 as unsupported: the proxy enforces the budget ...
    assert apply_reasoning(body, "openrouter", budget) == {
        "model": "m", "messages": [SYS, USER], "max_tokens": 100, "reasoning": {"enabled": True},
    }
    # ... unless the route says its model honours it
    honours = Route(upstream="u", model="m", honours_reasoning_budget=True)
    assert apply_reasoning(body, "openrouter", budget, honours)["reasoning"] == {"enabled": True, "max_tokens": 2000}
    assert apply_reasoning(payload(SYS, USER), "openrouter", ON)["reasoning"] == {"enabled": True}
    assert apply_reasoning(payload(SYS, USER, reasoning=True), "openrouter", OFF) == {
        "model": "m", "messages": [SYS, USER], "max_tokens": 100, "reasoning": {"enabled": False},
    }


@pytest.mark.parametrize("kind", ["nous", "litellm"])
def test_nous_and_litellm(kind: str) -> None:
    assert apply_reasoning(payload(SYS, USER), kind, ON) == {
        "model": "m", "messages": [{"role": "system", "content": P + "\n\nBe brief."}, USER], "max_tokens": 100,
    }
    assert apply_reasoning(payload(USER), kind, ON) == {
        "model": "m", "messages": [{"role": "system", "content": P}, USER], "max_tokens": 100,
    }
    assert apply_reasoning(payload(SYS, USER, max_reasoning_tokens=5), kind, OFF) == payload(SYS, USER)


def test_demo() -> None:
    assert apply_reasoning(payload(USER, reasoning={"enabled": True}), "demo", ON) == {
        "model": "m", "messages": [USER], "max_tokens": 100, "reasoning": True,
    }
    assert apply_reasoning(payload(USER), "demo", OFF)["reasoning"] is False


@pytest.mark.parametrize("kind", ["vllm", "openrouter", "nous", "litellm", "demo"])
@pytest.mark.parametrize("body", ON_BODIES + OFF_BODIES)
def test_every_way_of_asking_maps_cleanly(kind: str, body: dict[str, Any]) -> None:
    request = {"model": "m", "messages": [SYS, USER], **body}
    if "messages" in body:
        request["messages"] = [*body["messages"], USER]
    before = copy.deepcopy(request)
    decision = resolve(request)
    out = apply_reasoning(request, kind, decision)
    assert request == before  # input untouched
    for field in ("reasoning_effort", "reasoning_format", "max_reasoning_tokens"):
        assert field not in out
    assert "thinking" not in out.get("chat_template_kwargs", {}) or kind == "vllm"
    systems = [m for m in out["messages"] if m["role"] == "system"]
    prompt_sent = any(P in (m["content"] if isinstance(m["content"], str) else m["content"][0]["text"])
                      for m in systems)
    if decision.enabled:
        assert prompt_sent or kind in ("openrouter", "demo")
        assert sum(str(m["content"]).count(P) for m in systems) <= 1  # never twice
    else:
        assert not prompt_sent  # off means off
    if kind == "vllm":
        assert out["chat_template_kwargs"]["thinking"] is decision.enabled
        if decision.enabled:
            assert out["skip_special_tokens"] is False
    elif kind == "openrouter":
        assert out["reasoning"]["enabled"] is decision.enabled
        assert "exclude" not in out["reasoning"]
    elif kind == "demo":
        assert out["reasoning"] is decision.enabled
    else:
        assert "reasoning" not in out and "chat_template_kwargs" not in out


def test_off_strips_a_client_prompt() -> None:
    msgs = [{"role": "system", "content": f"{P}\n\nBe brief."}, USER]
    assert apply_reasoning(payload(*msgs), "nous", OFF)["messages"] == [SYS, USER]
    only = [{"role": "system", "content": P}, USER]
    assert apply_reasoning(payload(*only), "vllm", OFF)["messages"] == [USER]
    parts = [{"role": "system", "content": [{"type": "text", "text": P}, {"type": "text", "text": "x"}]}, USER]
    assert apply_reasoning(payload(*parts), "litellm", OFF)["messages"] == [
        {"role": "system", "content": [{"type": "text", "text": "x"}]}, USER]


def test_prompt_into_content_parts_and_no_duplicates() -> None:
    parts = {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}
    out = apply_reasoning(payload(parts, USER), "nous", ON)
    assert out["messages"][0]["content"] == [{"type": "text", "text": P + "\n\nBe brief."}]
    already = {"role": "system", "content": f"Rules.\n\n{P}"}
    assert apply_reasoning(payload(already, USER), "vllm", ON)["messages"][0] is already
    empty = {"role": "system", "content": ""}
    assert apply_reasoning(payload(empty, USER), "litellm", ON)["messages"][0] == {"role": "system", "content": P}


# ====================================================================================================================
# history hygiene
# ====================================================================================================================

HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "sys <think>x</think>"},
    {"role": "user", "content": "<think>user text stays</think>"},
    {"role": "assistant", "content": "<think>\nold reasoning\n</think>\n\nOld answer.", "reasoning": "old reasoning",
     "reasoning_content": "old reasoning", "reasoning_details": [{"type": "reasoning.text"}]},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                           "function": {"name": "f", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "<think>tool</think>"},
    {"role": "assistant", "content": "Plain answer."},
    {"role": "assistant", "content": "<think>\ncut off mid-thought"},
    {"role": "user", "content": "next"},
]


def test_clean_history_strips_reasoning() -> None:
    before = copy.deepcopy(HISTORY)
    out = clean_history(HISTORY, "nous", True)
    assert HISTORY == before
    assert out[0] is HISTORY[0] and out[1] is HISTORY[1] and out[4] is HISTORY[4] and out[7] is HISTORY[7]
    assert out[2] == {"role": "assistant", "content": "Old answer."}
    assert out[3] == HISTORY[3]  # tool call, content null: still valid
    assert out[5] == {"role": "assistant", "content": "Plain answer."}
    assert out[6] == {"role": "assistant", "content": ""}
    assert clean_history(HISTORY, "vllm", False) == out


def test_clean_history_vllm_thinking_on_uses_template_form() -> None:
    out = clean_history(HISTORY, "vllm", True)
    assert out[2] == {"role": "assistant", "content": "<think> </think>Old answer."}
    assert out[3]["content"] == "<think> </think>" and out[3]["tool_calls"] == HISTORY[3]["tool_calls"]
    assert out[5]["content"] == "<think> </think>Plain answer."
    assert out[6]["content"] == "<think> </think>"
    for message in out:
        if message["role"] == "assistant":
            assert THINK_CLOSE in message["content"]  # the template's split('</think>')[1] works
    # idempotent
    assert clean_history(out, "vllm", True) == out


def test_clean_history_content_parts() -> None:
    msgs = [{"role": "assistant", "content": [{"type": "text", "text": "<think>r</think> A"}]}]
    assert clean_history(msgs, "nous", True)[0]["content"] == [{"type": "text", "text": "A"}]
    assert clean_history(msgs, "vllm", True)[0]["content"] == [{"type": "text", "text": "<think> </think>A"}]
    assert clean_history([{"role": "assistant", "content": []}], "vllm", True)[0]["content"] == [
        {"type": "text", "text": "<think> </think>"}]


def test_strip_think_block() -> None:
    assert strip_think_block("  <think>a</think>\n\nb") == "b"
    assert strip_think_block("no block <think>a</think>") == "no block <think>a</think>"
    assert strip_think_block("<think>unclosed") == ""
    assert strip_think_block("<think></think>x</think>y") == "x</think>y"


def test_vllm_budget_follow_up_continues_the_message() -> None:
    sent = apply_reasoning(payload(SYS, USER, max_completion_tokens=9, stream=True), "vllm", ON)
    before = copy.deepcopy(sent)
    out = follow_up(sent, "vllm", "I considered it.", 500)
    assert sent == before
    assert out == {
        "model": "m",
        "messages": [{"role": "system", "content": P + "\n\nBe brief."}, USER,
                     {"role": "assistant", "content": "<think>\nI considered it.\n</think>\n"}],
        "max_tokens": 500,
        "stream": True,
        "chat_template_kwargs": {"thinking": True, "keep_cots": True},
        "skip_special_tokens": False,
        "continue_final_message": True,
        "add_generation_prompt": False,
    }


def test_budget_follow_up_validates() -> None:
    for kind in ("vllm", "nous"):
        with pytest.raises(ValueError):
            follow_up(payload(USER), kind, "r", 0)


@pytest.mark.parametrize("kind", ["nous", "litellm", "openrouter", "demo"])
def test_elsewhere_the_budget_follow_up_asks_for_the_answer_with_reasoning_off(kind: str) -> None:
    sent = apply_reasoning(payload(SYS, USER), kind, ON)
    out = follow_up(sent, kind, "\nPartial thoughts.\n", 300)
    assert out["max_tokens"] == 300
    assert "continue_final_message" not in out
    system = out["messages"][0]
    assert system["role"] == "system" and P not in system["content"]
    assert system["content"].startswith("Be brief.\n\nYou already started deliberating")
    assert "<reasoning>\nPartial thoughts.\n</reasoning>" in system["content"]
    assert out["messages"][1:] == [USER]
    # the inserted prompt alone: replaced by the note
    sent = apply_reasoning(payload(USER), kind, ON)
    out = follow_up(sent, kind, "r", 300)
    assert out["messages"][0]["content"].startswith("You already started deliberating")
    assert len(out["messages"]) == 2


def test_the_follow_up_switches_reasoning_off_the_kinds_way() -> None:
    assert follow_up(apply_reasoning(payload(USER), "openrouter", ON), "openrouter", "r", 10)["reasoning"] == {
        "enabled": False}
    assert follow_up(apply_reasoning(payload(USER), "demo", ON), "demo", "r", 10)["reasoning"] is False
