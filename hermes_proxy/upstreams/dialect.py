"""A dialect: everything about talking to Hermes 4 that differs by upstream kind, apart from the transport.

The pipeline asks the route's dialect, and nothing else, how to:

- send history (:meth:`Dialect.history`): earlier assistant turns without their reasoning, in the shape the kind's chat
  template needs;
- express the reasoning decision (:meth:`Dialect.with_reasoning`): a request field, a template flag or the
  deep-thinking system prompt, and a reasoning budget where the host enforces one itself;
- finish a reasoning budget the proxy enforces (:meth:`Dialect.budget_follow_up`): continue the assistant message, or
  ask again with reasoning off;
- offer tools and ask for structured output (:meth:`Dialect.with_tools`): native ``tools`` / ``response_format``,
  or Hermes' own system-prompt text, whose ``<tool_call>`` answers the pipeline parses back;
- shape the body on the wire (:meth:`Dialect.request_body`): ``stream``, ``stream_options``, fields it refuses;
- read the answer back (:meth:`Dialect.splitter`) and its usage (:meth:`Dialect.read_usage`).

The base class is the plain OpenAI-compatible host that knows Hermes only through its text (Nous Portal, litellm
hosts); each kind's module subclasses what differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from hermes_proxy.config import Route, UpstreamConfig
from hermes_proxy.reasoning import ReasoningDecision, ThinkSplitter
from hermes_proxy.reasoning.budget import forced_answer_payload
from hermes_proxy.reasoning.decision import REASONING_REQUEST_FIELDS
from hermes_proxy.reasoning.history import clean_history
from hermes_proxy.reasoning.prompts import with_deep_thinking_prompt, without_deep_thinking_prompt
from hermes_proxy.tokens.template import DEFAULT_SYSTEM_PROMPT
from hermes_proxy.tools.render import render_messages, with_system_text, with_tools_system_prompt
from hermes_proxy.tools.structured import format_instruction
from hermes_proxy.usage import Usage

REASONING_OFF = ReasoningDecision(enabled=False, source="policy")


class Dialect:
    kind: ClassVar[str] = ""
    #: the kind's chat template turns every earlier assistant turn into ``<think> </think>`` + answer when thinking is
    #: on (vLLM's Hermes template): history is sent that way, and the prompt is counted as the template renders it
    template_rewrites_history: ClassVar[bool] = False
    #: how reasoning on reaches the model through the deep-thinking system prompt: prepended to the caller's system
    #: message or inserted as one (``insert``); prepended only to a caller's system message, the template adding it
    #: when there is none (``prepend``); not at all, a request field does it (``none``)
    thinking_prompt: ClassVar[Literal["insert", "prepend", "none"]] = "insert"
    #: a route without a price in the config may take litellm's bundled price map (litellm hosts)
    uses_litellm_prices: ClassVar[bool] = False
    #: the host takes ``response_format`` itself (guided decoding); otherwise it becomes an instruction
    native_response_format: ClassVar[bool] = False
    #: the host reports what each request cost (``usage.cost``), which may be above the configured price
    reports_cost: ClassVar[bool] = False

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config

    # --- the request ----------------------------------------------------------------------------------------------

    def history(self, messages: list[Any], reasoning: bool) -> list[Any]:
        """The caller's messages with earlier assistant turns cleaned of their reasoning."""
        return clean_history(messages, empty_think_prefix=reasoning and self.template_rewrites_history)

    def with_reasoning(self, payload: Mapping[str, Any], decision: ReasoningDecision, route: Route) -> dict[str, Any]:
        """``payload`` without the proxy's own reasoning fields, carrying ``decision`` this kind's way.

        Off means off everywhere: the exact deep-thinking prompt is taken out of system messages.
        """
        out = {k: v for k, v in payload.items() if k not in REASONING_REQUEST_FIELDS}
        kwargs = out.pop("chat_template_kwargs", None)
        if isinstance(kwargs, Mapping):
            kwargs = {k: v for k, v in kwargs.items() if k != "thinking"}
        if kwargs:
            out["chat_template_kwargs"] = kwargs
        messages = out.get("messages")
        if isinstance(messages, list):
            if not decision.enabled:
                out["messages"] = without_deep_thinking_prompt(messages)
            elif self.thinking_prompt != "none":
                out["messages"] = with_deep_thinking_prompt(messages, insert=self.thinking_prompt == "insert")
        return out

    @property
    def native_tools(self) -> bool:
        """The host parses tool calls itself (its answer carries ``tool_calls``); else the proxy renders and parses."""
        return self.config.tools == "native"

    def with_tools(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Tools, tool history and ``response_format`` the way this host takes them.

        Rendered (the default): tool definitions and ``tool_choice`` become Hermes' ``<tools>`` system text (nothing
        for ``tool_choice: "none"``), earlier calls and results become ``<tool_call>`` / ``<tool_response>`` text,
        and the native fields are not sent. A JSON ``response_format`` the host cannot enforce becomes an instruction.
        """
        out = dict(payload)
        messages = out.get("messages")
        if not self.native_tools and isinstance(messages, list):
            tools = out.pop("tools", None)
            choice = out.pop("tool_choice", None)
            out.pop("parallel_tool_calls", None)
            if tools or any(m.get("role") == "tool" or m.get("tool_calls") for m in messages if isinstance(m, dict)):
                messages = render_messages(messages)
            if tools:
                messages = with_tools_system_prompt(messages, tools, choice,
                                                    default_system=self.template_default_system(out))
            out["messages"] = messages
        response_format = out.get("response_format")
        if not self.native_response_format and isinstance(response_format, Mapping) and isinstance(messages, list):
            instruction = format_instruction(response_format)
            if instruction:
                out["messages"] = with_system_text(out["messages"], instruction)
                out.pop("response_format")
        return out

    def template_default_system(self, payload: Mapping[str, Any]) -> str:
        """The system prompt the host's template injects when the caller sends none (rendered tools put it before
        the ``<tools>`` text, as the template's tools branch does, since the inserted system message stops the
        template from injecting it)."""
        return DEFAULT_SYSTEM_PROMPT

    def enforces_reasoning_budget(self, route: Route) -> bool:
        """Whether the host stops the reasoning at the budget itself; otherwise the proxy cuts it and asks for the
        answer (:meth:`budget_follow_up`)."""
        return False

    def budget_follow_up(self, payload: Mapping[str, Any], reasoning_so_far: str, remaining_tokens: int,
                         route: Route) -> dict[str, Any]:
        """The request that gets an answer once the proxy cut the reasoning at its budget: by default a second
        request, reasoning off, whose system message carries the reasoning so far (see
        :func:`~hermes_proxy.reasoning.budget.forced_answer_payload`)."""
        return forced_answer_payload(self.with_reasoning(payload, REASONING_OFF, route), reasoning_so_far,
                                     remaining_tokens)

    def request_body(self, payload: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
        """The body as sent: usage asked for on streams (where the upstream takes ``stream_options``), fields the
        upstream does not accept dropped."""
        body = dict(payload)
        body["stream"] = stream
        if stream and self.config.stream_options:
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            body["stream_options"] = options
        else:
            body.pop("stream_options", None)
        if not self.config.accepts_top_k:
            body.pop("top_k", None)
        return body

    def headers(self) -> dict[str, str]:
        """Extra HTTP headers on every request to this kind."""
        return {}

    def describe(self) -> str:
        """Where requests go, for ``check-config`` and the start-up summary."""
        return self.config.base_url

    def warnings(self) -> list[str]:
        """What ``check-config`` and the start-up should warn about this upstream's settings."""
        return []

    # --- the answer -----------------------------------------------------------------------------------------------

    def splitter(self, decision: ReasoningDecision, whole_text: str | None = None) -> ThinkSplitter:
        """The ``<think>`` splitter for one upstream call's text.

        With reasoning on, text that closes a think block it never opened is reasoning up to the close: the host's
        template opened it (``prefills_think`` on the upstream), or, when the whole text is known at once (a
        non-streaming call), the text shows it.
        """
        if not decision.enabled:
            return ThinkSplitter()
        if self.config.prefills_think:
            return ThinkSplitter(expect_reasoning=True, unclosed="reasoning")
        return ThinkSplitter(expect_reasoning=whole_text is not None and _closes_unopened_think(whole_text))

    def read_usage(self, raw: Any) -> Usage | None:
        """One chunk's ``usage`` object; ``None`` when it carries none."""
        return Usage.from_openai(raw)


def _closes_unopened_think(text: str) -> bool:
    close = text.find("</think>")
    return close >= 0 and "<think>" not in text[:close]
