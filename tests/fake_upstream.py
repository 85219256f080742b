"""A real aiohttp server that speaks the dialects of Hermes 4's upstreams, with the faults real ones have.

Each test builds a :class:`Script`, starts :func:`make_upstream_app` with pytest-aiohttp's ``aiohttp_server`` and reads
``script.requests`` to see exactly what the proxy sent.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from hermes_proxy.reasoning.prompts import DEEP_THINKING_PROMPT

REASONING = "The user wants a greeting. A short, friendly answer fits."
ANSWER = "Hello! How can I help you today?"


@dataclass
class Script:
    dialect: str = "vllm"  # vllm | openrouter | nous
    reasoning_text: str = REASONING
    answer: str = ANSWER
    #: HTTP statuses to answer with, one per call, before answering normally (e.g. [500] then a normal answer)
    fail_statuses: list[int] = field(default_factory=list)
    retry_after: str | None = None
    #: close the connection after this many content events (mid-stream death)
    die_after: int | None = None
    #: send an OpenRouter-style error chunk after this many content events
    error_chunk_after: int | None = None
    #: sleep this long before answering (read timeout tests)
    hang_s: float = 0.0
    #: split every SSE event into writes of this many bytes (0 = one write per event)
    split_bytes: int = 0
    crlf: bool = False
    comments: bool = False
    send_done: bool = True
    send_usage: bool = True
    usage: dict[str, Any] = field(default_factory=lambda: {"prompt_tokens": 31, "completion_tokens": 20,
                                                           "total_tokens": 51})
    openrouter_cost: float | None = 0.00012
    #: how many characters per content event
    piece: int = 4
    #: pause between content events (a slow model)
    delay_s: float = 0.0
    tool_call: dict[str, Any] | None = None
    #: generate past max_tokens as some routers and old servers do (the usage reported counts it all)
    ignore_max_tokens: bool = False
    #: extra usage fields OpenRouter sends (e.g. BYOK: is_byok, cost_details.upstream_inference_cost)
    usage_extra: dict[str, Any] = field(default_factory=dict)
    #: every chunk carries the running usage totals (vLLM with continuous usage stats), the last one the full figures
    cumulative_usage: bool = False
    #: the template opened <think> in the generation prompt: with reasoning on the text starts inside the reasoning
    prefill_think: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers_seen: list[dict[str, str]] = field(default_factory=list)

    def thinking_requested(self, body: dict[str, Any]) -> bool:
        if self.dialect == "vllm" and (body.get("chat_template_kwargs") or {}).get("thinking"):
            return True
        if self.dialect == "openrouter" and (body.get("reasoning") or {}).get("enabled"):
            return True
        return any(DEEP_THINKING_PROMPT in str(m.get("content")) for m in body.get("messages", [])
                   if m.get("role") == "system")


def make_upstream_app(script: Script) -> web.Application:
    app = web.Application()

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "Hermes-4-405B", "object": "model"}]})

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        script.requests.append(body)
        script.headers_seen.append(dict(request.headers))
        if script.hang_s:
            await asyncio.sleep(script.hang_s)
        if script.fail_statuses:
            status = script.fail_statuses.pop(0)
            headers = {"Retry-After": script.retry_after} if script.retry_after else {}
            if script.dialect == "vllm":
                error = {"object": "error", "message": f"simulated {status}", "type": "Error", "code": status}
            else:
                error = {"error": {"code": status, "message": f"simulated {status}"}}
            return web.json_response(error, status=status, headers=headers)
        thinking = script.thinking_requested(body)
        continuing = bool(body.get("continue_final_message"))
        reasoning = script.reasoning_text if thinking and not continuing else ""
        answer = script.answer
        if body.get("stream"):
            return await _stream(request, script, body, reasoning, answer)
        message: dict[str, Any] = {"role": "assistant"}
        if script.dialect == "openrouter":
            message["content"] = answer
            if reasoning:
                message["reasoning"] = reasoning
        else:
            message["content"] = _text(script, reasoning, answer)
        if script.tool_call:
            message["tool_calls"] = [script.tool_call]
            message["content"] = None
        usage = {**script.usage, **script.usage_extra}
        if script.dialect == "openrouter" and script.openrouter_cost is not None:
            usage["cost"] = script.openrouter_cost
        return web.json_response({"id": "up-1", "object": "chat.completion", "model": body.get("model"),
                                  "choices": [{"index": 0, "message": message, "finish_reason":
                                               "tool_calls" if script.tool_call else "stop"}],
                                  "usage": usage})

    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def _stream(request: web.Request, script: Script, body: dict[str, Any], reasoning: str,
                  answer: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    newline = "\r\n" if script.crlf else "\n"

    async def send(payload: str) -> None:
        data = payload.encode()
        if script.split_bytes:
            for start in range(0, len(data), script.split_bytes):
                await response.write(data[start:start + script.split_bytes])
                await asyncio.sleep(0)
        else:
            await response.write(data)

    async def event(obj: dict[str, Any]) -> None:
        if script.comments:
            await send(f": OPENROUTER PROCESSING{newline}{newline}")
        await send(f"data: {json.dumps(obj)}{newline}{newline}")

    sent = 0

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        nonlocal sent
        body_ = {"id": "up-1", "object": "chat.completion.chunk", "model": body.get("model"),
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if script.cumulative_usage:
            sent = script.usage["completion_tokens"] if finish else min(sent + 1, script.usage["completion_tokens"])
            body_["usage"] = {"prompt_tokens": script.usage["prompt_tokens"], "completion_tokens": sent,
                              "total_tokens": script.usage["prompt_tokens"] + sent}
        return body_

    await event(chunk({"role": "assistant", "content": ""}))
    pieces: list[dict[str, Any]] = []
    if script.dialect == "openrouter":
        pieces += [{"reasoning": reasoning[i:i + script.piece]} for i in range(0, len(reasoning), script.piece)]
        pieces += [{"content": answer[i:i + script.piece]} for i in range(0, len(answer), script.piece)]
    else:
        text = _text(script, reasoning, answer)
        pieces += [{"content": text[i:i + script.piece]} for i in range(0, len(text), script.piece)]
    limit = body.get("max_tokens")
    finish = "stop"
    if isinstance(limit, int) and limit < len(pieces) and not script.ignore_max_tokens:
        pieces, finish = pieces[:limit], "length"
    for index, delta in enumerate(pieces):
        if script.die_after is not None and index == script.die_after:
            assert request.transport is not None
            request.transport.close()
            return response
        if script.error_chunk_after is not None and index == script.error_chunk_after:
            await event({"error": {"code": 502, "message": "provider disconnected"},
                         "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]})
            await response.write_eof()
            return response
        if script.delay_s:
            await asyncio.sleep(script.delay_s)
        await event(chunk(delta))
    if script.tool_call:
        call = dict(script.tool_call)
        await event(chunk({"tool_calls": [{"index": 0, **call}]}))
        finish = "tool_calls"
    await event(chunk({}, finish))
    wants_usage = (body.get("stream_options") or {}).get("include_usage")
    if script.send_usage and wants_usage:
        usage = {**script.usage, **script.usage_extra}
        if script.dialect == "openrouter" and script.openrouter_cost is not None:
            usage["cost"] = script.openrouter_cost
        await event({"id": "up-1", "object": "chat.completion.chunk", "model": body.get("model"), "choices": [],
                     "usage": usage})
    if script.send_done:
        await send(f"data: [DONE]{newline}{newline}")
    await response.write_eof()
    return response


def _text(script: Script, reasoning: str, answer: str) -> str:
    """The model's text as a vLLM without a reasoning parser returns it."""
    if not reasoning:
        return answer
    if script.prefill_think:
        return f"{reasoning}\n</think>\n\n{answer}"
    return f"<think>\n{reasoning}\n</think>\n\n{answer}"
