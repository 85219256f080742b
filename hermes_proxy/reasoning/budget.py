"""The reasoning budget: the follow-up request once the reasoning so far has reached ``max_reasoning_tokens``.

Both builders are pure and upstream-neutral; which one applies is the route's dialect's choice
(:meth:`hermes_proxy.upstreams.dialect.Dialect.budget_follow_up`):

- :func:`continuation_payload` (vLLM): the same request continuing an assistant message that holds the reasoning so
  far and a forced ``</think>``, so the model writes its answer right after it (exact budget forcing).
- :func:`forced_answer_payload` (every other kind, OpenRouter included unless the route says its model honours
  ``reasoning.max_tokens``): a second request with reasoning off whose system message carries the reasoning so far
  and asks for the answer now. It keeps a well-formed conversation (the last turn is still the caller's, no fake user
  turn and no trailing assistant message whose handling varies by host) and reasoning stays off as the model was
  trained for. Its costs: the prompt is billed a second time (plus the reasoning, as input tokens), and the answer is
  only as good as the cut reasoning. With no ``max_tokens`` left, the response ends with the reasoning so far and
  ``finish_reason: "length"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hermes_proxy.reasoning.prompts import FORCED_ANSWER_NOTE, THINK_CLOSE, THINK_OPEN

__all__ = ["continuation_payload", "forced_answer_payload"]


def continuation_payload(payload: Mapping[str, Any], reasoning_so_far: str, remaining_tokens: int) -> dict[str, Any]:
    """The follow-up request that makes the model answer right after its (cut) reasoning (vLLM's message continuation).

    ``payload`` is the upstream payload already sent. The result has the same messages plus an assistant message
    ``"<think>\\n" + reasoning_so_far + "\\n</think>\\n"`` continued (``continue_final_message: true``,
    ``add_generation_prompt: false``), ``max_tokens: remaining_tokens`` (``max_completion_tokens`` dropped), and
    ``chat_template_kwargs`` with ``thinking: true`` and ``keep_cots: true`` so that a template which rewrites
    assistant turns keeps this one's reasoning (vLLM must find the final message verbatim in the rendered prompt).
    Everything the model writes then is answer: take it as content directly (a fresh ``ThinkSplitter`` would read a
    stray ``</think>`` at its start as a tag).
    """
    if remaining_tokens < 1:
        raise ValueError(f"remaining_tokens must be positive; got {remaining_tokens}")
    out = {k: v for k, v in payload.items() if k != "max_completion_tokens"}
    messages = list(out.get("messages") or [])
    messages.append({"role": "assistant", "content": THINK_OPEN + "\n" + reasoning_so_far + "\n" + THINK_CLOSE + "\n"})
    out["messages"] = messages
    out["continue_final_message"] = True
    out["add_generation_prompt"] = False
    out["max_tokens"] = remaining_tokens
    base = out.get("chat_template_kwargs")
    out["chat_template_kwargs"] = {**(base if isinstance(base, Mapping) else {}), "thinking": True, "keep_cots": True}
    return out


def forced_answer_payload(reasoning_off_payload: Mapping[str, Any], reasoning_so_far: str,
                          remaining_tokens: int) -> dict[str, Any]:
    """A second request that asks for the answer given the (cut) reasoning so far. Any upstream.

    ``reasoning_off_payload`` is the payload already sent, with reasoning already switched off the upstream's own way
    (the deep-thinking prompt removed; the dialect does it). The
    reasoning so far (stripped) is appended to the first system message (or sent as one) with
    :data:`~hermes_proxy.reasoning.prompts.FORCED_ANSWER_NOTE`, and ``max_tokens`` is ``remaining_tokens``
    (``max_completion_tokens`` dropped). Its whole output is answer. Its usage is billed on top of the first
    request's (the prompt is sent twice). The input is not modified.
    """
    if remaining_tokens < 1:
        raise ValueError(f"remaining_tokens must be positive; got {remaining_tokens}")
    out = {k: v for k, v in reasoning_off_payload.items() if k != "max_completion_tokens"}
    out["max_tokens"] = remaining_tokens
    note = FORCED_ANSWER_NOTE.format(reasoning=reasoning_so_far.strip())
    messages = list(out.get("messages") or [])
    first = messages[0] if messages else None
    if isinstance(first, Mapping) and first.get("role") == "system":
        content = first.get("content")
        if isinstance(content, str) and content:
            messages[0] = {**first, "content": content + "\n\n" + note}
        elif isinstance(content, list):
            messages[0] = {**first, "content": [*content, {"type": "text", "text": note}]}
        else:
            messages[0] = {**first, "content": note}
    else:
        messages.insert(0, {"role": "system", "content": note})
    out["messages"] = messages
    return out
