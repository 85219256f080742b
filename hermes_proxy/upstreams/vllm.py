"""A local vLLM serving Hermes 4 (``--tool-call-parser hermes``, no reasoning parser): ``<think>`` arrives in the text.

Reasoning is switched by the chat template's ``thinking`` flag; the template injects the deep-thinking prompt only
when there is no system message, so the dialect prepends it to the caller's own. With thinking on the template
rewrites every earlier assistant turn as ``<think> </think>`` + answer and fails on a turn without ``</think>``, so
history is sent in that shape. ``skip_special_tokens: false`` keeps the think tags in the text should the tokenizer
mark them special. A reasoning budget is exact: the assistant message is continued after a forced ``</think>``.
``response_format`` is vLLM's own (guided decoding). Tools are native only with ``tools = "native"`` on the upstream:
a vLLM started without ``--enable-auto-tool-choice --tool-call-parser hermes`` refuses any request with ``tools``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hermes_proxy.config import Route
from hermes_proxy.reasoning import DEEP_THINKING_PROMPT, ReasoningDecision
from hermes_proxy.reasoning.budget import continuation_payload
from hermes_proxy.upstreams.dialect import Dialect


class VLLMDialect(Dialect):
    kind = "vllm"
    template_rewrites_history = True
    thinking_prompt = "prepend"
    native_response_format = True  # guided decoding

    def with_reasoning(self, payload: Mapping[str, Any], decision: ReasoningDecision, route: Route) -> dict[str, Any]:
        out = super().with_reasoning(payload, decision, route)
        base = out.get("chat_template_kwargs")
        out["chat_template_kwargs"] = {**(base if isinstance(base, Mapping) else {}), "thinking": decision.enabled}
        if decision.enabled:
            out["skip_special_tokens"] = False
        return out

    def template_default_system(self, payload: Mapping[str, Any]) -> str:
        # the template's thinking flag picks the deep-thinking prompt as its default (left to it when there is no
        # caller system message): rendered tools insert a system message, so they must carry it themselves
        kwargs = payload.get("chat_template_kwargs")
        if isinstance(kwargs, Mapping) and kwargs.get("thinking"):
            return DEEP_THINKING_PROMPT
        return super().template_default_system(payload)

    def describe(self) -> str:
        tools = ("tools native (vLLM's hermes parser)" if self.native_tools
                 else "tools rendered by the proxy (no vLLM tool flags needed)")
        return f"{self.config.base_url}; {tools}"

    def warnings(self) -> list[str]:
        if not self.native_tools:
            return []
        return ['takes tools natively (tools = "native"): make sure vLLM runs with --enable-auto-tool-choice '
                "--tool-call-parser hermes or every request with tools gets a 400"]

    def budget_follow_up(self, payload: Mapping[str, Any], reasoning_so_far: str, remaining_tokens: int,
                         route: Route) -> dict[str, Any]:
        return continuation_payload(payload, reasoning_so_far, remaining_tokens)
