"""The upstream interface: one method that yields OpenAI ``chat.completion.chunk``-shaped dicts.

Contract, relied on by the gateway's retry/failover:
- errors before the first chunk is yielded are :class:`~hermes_proxy.errors.UpstreamError` subclasses whose
  ``retryable`` flag says whether another try (same or next route) may work;
- errors after the first chunk are :class:`~hermes_proxy.errors.UpstreamStreamError`: the response has started and
  the gateway ends it with an error event;
- a non-streaming upstream call yields exactly one chunk carrying the whole message (``delta`` holds it) and the usage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from hermes_proxy.config import UpstreamConfig

if TYPE_CHECKING:
    from hermes_proxy.upstreams.dialect import Dialect

Chunk = dict[str, Any]


class Upstream(Protocol):
    config: UpstreamConfig
    #: how this kind is spoken to (request shape, reasoning, history, usage)
    dialect: Dialect
    #: responses are produced by the built-in simulator, not a real model
    simulated: bool

    def chat(self, payload: dict[str, Any], *, stream: bool) -> AsyncIterator[Chunk]: ...

    async def ping(self) -> None:
        """Raise an UpstreamError when the upstream cannot be reached (for ``/readyz``)."""

    async def aclose(self) -> None: ...


def message_to_chunk(response: dict[str, Any]) -> Chunk:
    """A whole non-streaming ``chat.completion`` turned into one chunk whose delta is the message."""
    choices = response.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    raw_message = choice.get("message")
    message: dict[str, Any] = raw_message if isinstance(raw_message, dict) else {}
    delta: dict[str, Any] = {"role": "assistant"}
    for field in ("content", "reasoning", "reasoning_content", "refusal"):
        if message.get(field):
            delta[field] = message[field]
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, list) and tool_calls:
        delta["tool_calls"] = [
            {**call, "index": index} for index, call in enumerate(tool_calls) if isinstance(call, dict)
        ]
    chunk: Chunk = {
        "id": response.get("id"),
        "model": response.get("model"),
        "choices": [{"index": 0, "delta": delta, "finish_reason": choice.get("finish_reason")}],
    }
    if "usage" in response:
        chunk["usage"] = response["usage"]
    return chunk
