"""Stage 1, parse: validation of an OpenAI ``/v1/chat/completions`` body. Clear 400s naming the param; nothing else
is decided here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hermes_proxy.errors import InvalidRequest
from hermes_proxy.tools.choice import validate_tools
from hermes_proxy.tools.structured import validate_response_format

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
#: fields the proxy consumes itself and never forwards as they are (the reasoning fields are the dialect's)
#: fields the proxy reads and does not forward (``cache``: the response cache, hermes_proxy.cache)
CONSUMED_FIELDS = frozenset({"model", "stream", "stream_options", "max_completion_tokens", "max_tokens", "n", "cache"})


@dataclass(frozen=True, slots=True)
class ChatRequest:
    body: Mapping[str, Any]
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    tools: list[dict[str, Any]] | None


def _number(body: Mapping[str, Any], key: str, low: float, high: float) -> None:
    if key not in body or body[key] is None:
        return
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"'{key}' must be a number, got {type(value).__name__}", param=key)
    if not low <= value <= high:
        raise InvalidRequest(f"'{key}' must be between {low:g} and {high:g}, got {value}", param=key)


def _positive_int(body: Mapping[str, Any], key: str) -> int | None:
    if key not in body or body[key] is None:
        return None
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"'{key}' must be an integer, got {type(value).__name__}", param=key)
    if value < 1:
        raise InvalidRequest(f"'{key}' must be at least 1, got {value}", param=key)
    return value


def _content_ok(content: Any) -> bool:
    if content is None or isinstance(content, str):
        return True
    return isinstance(content, list) and all(isinstance(part, dict) and isinstance(part.get("type"), str)
                                             for part in content)


def parse_chat_request(body: Any) -> ChatRequest:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    model = body.get("model")
    if model is None:
        raise InvalidRequest("missing required parameter: 'model'", param="model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("'model' must be a non-empty string", param="model")
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("missing required parameter: 'messages'", param="messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array of message objects", param="messages")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"'{where}' must be an object", param=where)
        role = message.get("role")
        if role not in ROLES:
            raise InvalidRequest(f"'{where}.role' must be one of {', '.join(ROLES)}; got {role!r}", param=f"{where}.role")
        if not _content_ok(message.get("content")):
            raise InvalidRequest(f"'{where}.content' must be a string, null or an array of content parts",
                                 param=f"{where}.content")
        if message.get("content") is None and role != "assistant":
            raise InvalidRequest(f"'{where}.content' is required for role {role!r}", param=f"{where}.content")
        if "tool_calls" in message and message["tool_calls"] is not None and not isinstance(message["tool_calls"], list):
            raise InvalidRequest(f"'{where}.tool_calls' must be an array", param=f"{where}.tool_calls")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise InvalidRequest("'stream_options' must be an object", param="stream_options")
        if not stream:
            raise InvalidRequest("'stream_options' is only allowed when 'stream' is true", param="stream_options")
        flag = options.get("include_usage", False)
        if not isinstance(flag, bool):
            raise InvalidRequest("'stream_options.include_usage' must be a boolean",
                                 param="stream_options.include_usage")
        include_usage = flag
    max_tokens = _positive_int(body, "max_tokens")
    max_completion = _positive_int(body, "max_completion_tokens")
    if max_tokens is not None and max_completion is not None and max_tokens != max_completion:
        raise InvalidRequest("'max_tokens' and 'max_completion_tokens' disagree; send one", param="max_tokens")
    n = _positive_int(body, "n")
    if n is not None and n != 1:
        raise InvalidRequest("only n=1 is supported (Hermes 4 upstreams generate one choice)", param="n")
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _number(body, "presence_penalty", -2, 2)
    _number(body, "frequency_penalty", -2, 2)
    if "top_k" in body and body["top_k"] is not None and (isinstance(body["top_k"], bool)
                                                          or not isinstance(body["top_k"], int)):
        raise InvalidRequest("'top_k' must be an integer", param="top_k")
    if "seed" in body and body["seed"] is not None and (isinstance(body["seed"], bool)
                                                        or not isinstance(body["seed"], int)):
        raise InvalidRequest("'seed' must be an integer", param="seed")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
        isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop)
    ):
        raise InvalidRequest("'stop' must be a string or an array of at most 4 strings", param="stop")
    validate_tools(body)
    validate_response_format(body)
    tools = body.get("tools")
    if "user" in body and body["user"] is not None and not isinstance(body["user"], str):
        raise InvalidRequest("'user' must be a string", param="user")
    return ChatRequest(
        body=body,
        model=model.strip(),
        messages=messages,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_completion if max_completion is not None else max_tokens,
        tools=tools or None,
    )
