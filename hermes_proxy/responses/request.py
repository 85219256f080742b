"""A ``POST /v1/responses`` body read and checked, and turned into the chat completions body the pipeline runs.

Nothing here talks to an upstream: the chat pipeline (:meth:`Gateway.chat <hermes_proxy.pipeline.Gateway.chat>`)
runs the translated body exactly like a ``/v1/chat/completions`` request, with the same validation, reasoning
decision, budgets and billing.

Input items -> chat messages:

- ``input`` as a string is one user message; ``instructions`` is a system message in front (not carried over from a
  previous response, as on OpenAI);
- ``message`` items (roles ``user``, ``system``, ``developer``, ``assistant``) with ``input_text`` / ``output_text`` /
  ``refusal`` parts (or a plain string); images, files and audio are a 400 (Hermes 4 reads text only);
- ``function_call`` items become the ``tool_calls`` of an assistant message (joined to the assistant text before
  them), ``function_call_output`` items ``tool`` messages;
- ``reasoning`` items are dropped (earlier reasoning is never sent back to Hermes; the dialects strip it anyway).

``reasoning.effort`` maps onto the chat body's ``reasoning`` object: ``none`` is off, any other effort is on with a
reasoning budget of :data:`EFFORT_BUDGETS` tokens (``high``: no budget, Hermes stops thinking by itself, about 30k
tokens at most); ``reasoning.summary`` alone (``auto``, ``concise``, ``detailed``) turns reasoning on. Without either,
the team's and the model's defaults decide, as on chat completions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hermes_proxy.errors import InvalidRequest

#: reasoning budget (tokens) per ``reasoning.effort``; None: no budget
EFFORT_BUDGETS: dict[str, int | None] = {"minimal": 1024, "low": 4096, "medium": 16384, "high": None}
EFFORTS = ("none", *EFFORT_BUDGETS)
SUMMARIES = ("auto", "concise", "detailed")
ROLES = ("user", "system", "developer", "assistant")
TEXT_PARTS = ("input_text", "output_text", "text", "summary_text")
#: chat completions fields a client may add (``extra_body``) and that the pipeline reads as it does on chat
CHAT_EXTENSIONS = ("reasoning_format", "max_reasoning_tokens", "top_k", "seed", "stop", "presence_penalty",
                   "frequency_penalty", "chat_template_kwargs")
#: Responses fields accepted and not acted on (echoed where the Response object has them)
IGNORED = ("include", "truncation", "service_tier", "prompt_cache_key", "safety_identifier", "top_logprobs",
           "max_tool_calls", "stream_options", "prompt_cache_retention")
UNSUPPORTED = {
    "background": "background responses are not supported; send the request and wait, or stream it",
    "conversation": "conversations are not supported; chain responses with 'previous_response_id'",
    "prompt": "stored prompt templates are not supported; send 'instructions' and 'input'",
}
BUILT_IN_TOOLS_HINT = ("Hermes 4 runs no OpenAI-hosted tools (web search, file search, code interpreter, computer "
                       "use, image generation, MCP, shell); define it as a function tool and run it in your app")


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """A checked ``/v1/responses`` body: what the chat body is made of, and what the Response object echoes."""

    body: Mapping[str, Any]
    model: str
    #: this request's own input, as items (a string input is one user message item)
    input_items: list[dict[str, Any]]
    instructions: str | None
    stream: bool
    store: bool
    previous_response_id: str | None
    metadata: dict[str, str]
    tools: list[dict[str, Any]]
    tool_choice: Any
    text_format: dict[str, Any] | None
    reasoning: dict[str, Any] | None

    @property
    def json_format(self) -> bool:
        return self.text_format is not None and self.text_format.get("type") in ("json_object", "json_schema")


def parse_request(body: Any) -> ResponsesRequest:
    """Check the Responses-only parts of ``body`` (400s name the Responses param); the rest is checked by the chat
    pipeline."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    for key, why in UNSUPPORTED.items():
        if body.get(key) not in (None, False):
            raise InvalidRequest(f"'{key}': {why}", param=key, code="unsupported_parameter")
    model = body.get("model")
    if model is None:
        raise InvalidRequest("missing required parameter: 'model'", param="model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("'model' must be a non-empty string", param="model")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise InvalidRequest("'instructions' must be a string", param="instructions")
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous):
        raise InvalidRequest("'previous_response_id' must be a response id", param="previous_response_id")
    return ResponsesRequest(
        body=body, model=model, input_items=_input_items(body.get("input")), instructions=instructions,
        stream=_flag(body, "stream", False), store=_flag(body, "store", True), previous_response_id=previous,
        metadata=_metadata(body.get("metadata")), tools=_tools(body.get("tools")),
        tool_choice=body.get("tool_choice"), text_format=_text_format(body.get("text")),
        reasoning=_reasoning(body.get("reasoning")))


def chat_body(request: ResponsesRequest, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat completions body for ``request``, after the ``history`` items (a previous response's input and
    output, when chained)."""
    body = request.body
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    messages += items_to_messages(history, "previous_response_id")
    messages += items_to_messages(request.input_items, "input")
    chat: dict[str, Any] = {"model": request.model, "messages": messages, "stream": request.stream}
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    for key in ("temperature", "top_p", "user", "parallel_tool_calls", *CHAT_EXTENSIONS):
        if body.get(key) is not None:
            chat[key] = body[key]
    tools = [_chat_tool(tool) for tool in request.tools]
    choice = request.tool_choice
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = {t.get("name") for t in choice.get("tools") or () if isinstance(t, dict)}
        tools = [t for t in tools if t["function"].get("name") in allowed]
        choice = choice.get("mode") or "auto"
    if tools:
        chat["tools"] = tools
    if choice is not None:
        chat["tool_choice"] = _chat_tool_choice(choice)
    if request.text_format is not None:
        response_format = _response_format(request.text_format)
        if response_format is not None:
            chat["response_format"] = response_format
    if request.reasoning is not None:
        reasoning = _chat_reasoning(request.reasoning)
        if reasoning is not None:
            chat["reasoning"] = reasoning
    return chat


# --- input -----------------------------------------------------------------------------------------------------------


def _input_items(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        raise InvalidRequest("missing required parameter: 'input'", param="input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("'input' must be a string or a non-empty array of input items", param="input")
    items = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidRequest(f"'input[{index}]' must be an object", param=f"input[{index}]")
        if "type" not in item and "role" in item:
            item = {"type": "message", **item}
        items.append(item)
    return items  # each item is checked as it is translated (chat_body), its index in the error


def items_to_messages(items: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """Responses items -> chat messages (see the module docstring); 400 naming the item for what Hermes cannot take."""
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        at = f"{where}[{index}]"
        kind = item.get("type")
        if kind == "message":
            role = item.get("role")
            if role not in ROLES:
                raise InvalidRequest(f"'{at}.role' must be one of {', '.join(ROLES)}; got {role!r}", param=f"{at}.role")
            messages.append({"role": role, "content": _content(item.get("content"), f"{at}.content")})
        elif kind == "function_call":
            call = {"id": _text_field(item, "call_id", at), "type": "function",
                    "function": {"name": _text_field(item, "name", at),
                                 "arguments": _text_field(item, "arguments", at)}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _content(output, f"{at}.output")
            messages.append({"role": "tool", "tool_call_id": _text_field(item, "call_id", at),
                             "content": text if isinstance(text, str) else "\n".join(p["text"] for p in text)})
        elif kind == "reasoning":
            continue
        else:
            raise InvalidRequest(
                f"'{at}.type' {kind!r} is not supported: hermes-proxy takes message, function_call, "
                "function_call_output and reasoning items", param=f"{at}.type", code="unsupported_input_item")
    return messages


def _content(content: Any, at: str) -> str | list[dict[str, Any]]:
    """A message's content as chat content: a string, or text parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"'{at}' must be a string or an array of content parts", param=at)
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PARTS and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append({"type": "text", "text": part["refusal"]})
        elif kind in ("input_image", "input_file", "input_audio"):
            raise InvalidRequest(f"'{at}[{index}]': {kind} is not supported (Hermes 4 reads text only)",
                                 param=f"{at}[{index}]", code="unsupported_content")
        else:
            raise InvalidRequest(f"'{at}[{index}]' must be an input_text or output_text part", param=f"{at}[{index}]")
    if len(parts) == 1:
        return str(parts[0]["text"])
    return parts


def _text_field(item: Mapping[str, Any], key: str, at: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise InvalidRequest(f"'{at}.{key}' must be a string", param=f"{at}.{key}")
    return value


# --- options ---------------------------------------------------------------------------------------------------------


def _flag(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{key}' must be a boolean", param=key)
    return value


def _metadata(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > 16:
        raise InvalidRequest("'metadata' must be an object of at most 16 string values", param="metadata")
    for key, value in raw.items():
        if len(key) > 64 or not isinstance(value, str) or len(value) > 512:
            raise InvalidRequest("'metadata': keys are at most 64 characters, values strings of at most 512",
                                 param=f"metadata.{key}")
    return dict(raw)


def _tools(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequest("'tools' must be an array of tool objects", param="tools")
    for index, tool in enumerate(raw):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise InvalidRequest(f"'tools[{index}]': the {kind!r} tool is not available through hermes-proxy: "
                                 f"{BUILT_IN_TOOLS_HINT}", param=f"tools[{index}].type", code="unsupported_tool")
    return list(raw)


def _chat_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = {key: tool[key] for key in ("name", "description", "parameters", "strict") if tool.get(key) is not None}
    return {"type": "function", "function": function}


def _chat_tool_choice(choice: Any) -> Any:
    if isinstance(choice, str) or not isinstance(choice, dict):
        return choice  # none / auto / required; anything else is the chat check's 400
    if choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    raise InvalidRequest(f"'tool_choice': {choice.get('type')!r} is not available through hermes-proxy: "
                         f"{BUILT_IN_TOOLS_HINT}", param="tool_choice", code="unsupported_tool")


def _text_format(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRequest("'text' must be an object", param="text")
    fmt = raw.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise InvalidRequest("'text.format.type' must be one of text, json_object, json_schema",
                             param="text.format.type")
    return fmt


def _response_format(fmt: Mapping[str, Any]) -> dict[str, Any] | None:
    if fmt["type"] == "text":
        return None
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    spec = {key: fmt[key] for key in ("name", "schema", "strict", "description") if key in fmt}
    return {"type": "json_schema", "json_schema": spec}


def _reasoning(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRequest("'reasoning' must be an object {effort, summary}", param="reasoning")
    effort = raw.get("effort")
    if effort is not None and effort not in EFFORTS:
        raise InvalidRequest(f"'reasoning.effort' must be one of {', '.join(EFFORTS)}; got {effort!r}",
                             param="reasoning.effort")
    for key in ("summary", "generate_summary"):
        value = raw.get(key)
        if value is not None and value not in SUMMARIES:
            raise InvalidRequest(f"'reasoning.{key}' must be one of {', '.join(SUMMARIES)}; got {value!r}",
                                 param=f"reasoning.{key}")
    budget = raw.get("max_tokens")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        raise InvalidRequest("'reasoning.max_tokens' must be a positive integer", param="reasoning.max_tokens")
    return dict(raw)


def _chat_reasoning(reasoning: Mapping[str, Any]) -> dict[str, Any] | None:
    """The chat body's ``reasoning`` object for a Responses ``reasoning`` (see the module docstring)."""
    effort = reasoning.get("effort")
    summary = reasoning.get("summary") or reasoning.get("generate_summary")
    budget = reasoning.get("max_tokens")  # OpenRouter's extension, over the effort's budget
    if effort == "none":
        return {"enabled": False}
    if effort is None and summary is None and budget is None:
        return None
    chat: dict[str, Any] = {"enabled": True}
    budget = budget if budget is not None else EFFORT_BUDGETS.get(effort) if effort else None
    if budget is not None:
        chat["max_tokens"] = budget
    return chat
