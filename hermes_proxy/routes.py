"""Thin HTTP handlers: parse, authenticate, hand the request to the gateway, write JSON or SSE."""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any

from aiohttp import HttpVersion11, web

from hermes_proxy.appkeys import CONFIG, LEDGER, METRICS, REQUEST_ID, current_config, current_gateway
from hermes_proxy.auth import authenticate, require_admin
from hermes_proxy.cache.key import CACHE_HEADER
from hermes_proxy.errors import (
    HermesError,
    InvalidRequest,
    ModelNotFound,
    RequestTooLarge,
    StructuredOutputInvalid,
    UpstreamStreamError,
    internal_error,
    to_openai_error,
)
from hermes_proxy.json_body import parse_json_body
from hermes_proxy.ledger.base import usd_text
from hermes_proxy.pipeline import ChatCall, Outcome, Piece
from hermes_proxy.sse import DONE, KEEPALIVE, encode_event, encode_json
from hermes_proxy.tools.structured import strip_fence

log = logging.getLogger("hermes_proxy")
request_log = logging.getLogger("hermes_proxy.requests")
READY_TIMEOUT_S = 3.0
#: extra readiness probes (name -> async callable), e.g. the shared rate limiter
READY_PROBES: web.AppKey[dict[str, Any]] = web.AppKey("ready_probes", dict)


async def read_json(request: web.Request) -> Any:
    """The request's JSON body; every endpoint reads its body here (checks in :mod:`hermes_proxy.json_body`)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[CONFIG].server.max_request_bytes
        raise RequestTooLarge(f"request body too large (limit {limit} bytes; see server.max_request_bytes)") from None
    except web.RequestPayloadError as exc:
        # a body that does not match its Content-Encoding (or a broken chunked body): aiohttp fails while reading
        # aiohttp drops the connection after such a body, so the answer says so (a client must not reuse it)
        encoding = request.headers.get("Content-Encoding")
        cause = exc.__cause__ or exc
        reason = getattr(cause, "message", None) or str(cause)
        how = f"Content-Encoding: {encoding}" if encoding else "Transfer-Encoding"
        raise InvalidRequest(f"could not read the request body as sent ({how}): {reason}", param=how.split(":")[0],
                             headers={"Connection": "close"}) from None
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object")
    return parse_json_body(raw)


async def expect_handler(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` as aiohttp answers it; any other expectation gets a 417 as OpenAI error JSON.

    aiohttp calls a route's expect handler before the middlewares, and its default one answers text/plain (a 500 when
    the header is not UTF-8), so every route passes this one as ``expect_handler=``.
    """
    if request.version != HttpVersion11:
        return None
    expect = request.headers.get("Expect", "")
    if expect.lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the response proper has not started
        return None
    error = InvalidRequest(f"unsupported Expect header {expect!r} (only 100-continue is)", param="Expect",
                           code="expectation_failed")
    return web.json_response(to_openai_error(error), status=417)


def request_ids(request: web.Request) -> dict[str, str]:
    """The id the middleware gave this request is the ledger's when the proxy generated it; a client's own id is only
    a correlation id (it may be reused)."""
    if "x-request-id" in request.headers:
        return {"client_request_id": request[REQUEST_ID]}
    return {"request_id": request[REQUEST_ID]}


def usd_or_unknown(value: Decimal | None) -> str:
    return "unknown" if value is None else usd_text(value)


def call_headers(call: ChatCall) -> dict[str, str]:
    info = call.info
    assert info is not None
    headers = {
        **call.rate_headers,
        "x-hermes-reasoning": info.reasoning.header_value(),
        "x-hermes-route": info.route.label,
        "x-hermes-model": info.model,
        "x-hermes-max-tokens": f"{info.max_tokens}; source={info.max_tokens_source}",
        # the ledger's id of this request (x-request-id echoes the client's own when it sent one)
        "x-hermes-request-id": call.request_id,
        # the worst case held against the budget while the request runs
        "x-hermes-reserved-usd": usd_or_unknown(info.reserved_usd),
    }
    if info.simulated:
        headers["x-hermes-simulated"] = "true"
    cached = call.cache.header
    if cached is not None:
        headers[CACHE_HEADER] = cached
        if call.cache.age_s is not None:
            headers["x-hermes-cache-age"] = str(int(call.cache.age_s))
        saved = call.cache_saved_usd
        if saved is not None:
            headers["x-hermes-cache-saved-usd"] = usd_text(saved)
    plan = call.plan
    if plan is not None and plan.prompt_warning:
        headers["x-hermes-prompt-warning"] = header_text(plan.prompt_warning)
    admission = info.admission
    remaining = call.remaining_budget_usd()
    if remaining is not None:
        headers["x-hermes-budget-remaining-usd"] = usd_or_unknown(remaining)
    warning = admission.warning
    if warning:
        headers["x-hermes-budget-warning"] = warning
    return headers


def _chunk_prefix(call: ChatCall) -> bytes:
    info = call.info
    assert info is not None
    head = encode_json({"id": f"chatcmpl-{call.request_id}", "object": "chat.completion.chunk",
                        "created": int(time.time()), "model": info.response_model})
    return b"data: " + head[:-1]


async def chat_completions(request: web.Request) -> web.StreamResponse:
    call: ChatCall | None = None
    try:
        principal = await authenticate(request)
        body = await read_json(request)
        gateway = current_gateway(request.app)
        call = gateway.chat(body, principal, reasoning_header=request.headers.get("x-hermes-reasoning"),
                            cache_header=request.headers.get(CACHE_HEADER), **request_ids(request))
        async with call:
            if isinstance(body, dict) and body.get("stream"):
                return await _stream(request, call, include_usage=_include_usage(body))
            response = await _complete(call)
            # the answer goes out now and the ledger settles right after, as for a stream: the client does not wait
            # for the commit; the reservation holds the budget until then
            response.headers.update(call_headers(call))
            response.headers["x-hermes-overhead-ms"] = f"{call.overhead_ms:.2f}"
            await response.prepare(request)
            await response.write_eof()
        return response
    except HermesError as error:
        log_refused(request, call, error)
        raise


async def metrics_endpoint(request: web.Request) -> web.Response:
    if request.app[CONFIG].server.metrics_require_admin:
        require_admin(request)
    body, content_type = request.app[METRICS].render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


async def _stream(request: web.Request, call: ChatCall, *, include_usage: bool) -> web.StreamResponse:
    headers = call_headers(call)
    headers.update({"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
                    "X-Accel-Buffering": "no"})
    info = call.info
    assert info is not None
    headers["x-hermes-prompt-tokens"] = str(info.prompt_tokens)
    headers["x-hermes-overhead-ms"] = f"{call.overhead_ms:.2f}"
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    prefix = _chunk_prefix(call)
    first = True
    try:
        async for piece in call:
            if piece.keepalive:
                await response.write(KEEPALIVE)
                continue
            delta = _delta(piece, first)
            first = False
            finish = b"null" if piece.finish_reason is None else encode_json(piece.finish_reason)
            await response.write(prefix + b',"choices":[{"index":0,"delta":' + encode_json(delta)
                                 + b',"logprobs":null,"finish_reason":' + finish + b"}]}\n\n")
        checks = call.checks
        if checks is not None:
            for note in checks.notes:
                await response.write(f": x-hermes-note: {header_text(note)}\n\n".encode())
            if checks.structured_error is not None:
                invalid = StructuredOutputInvalid(checks.structured_error, param="response_format")
                call.fail(invalid)
                await response.write(encode_event(to_openai_error(invalid)))
    except UpstreamStreamError as exc:
        await response.write(encode_event(to_openai_error(exc)))
    except (ConnectionError, asyncio.CancelledError):
        raise  # the client is gone: nothing more to write; the call settles as cancelled
    except Exception:
        # the headers are out: a second status line cannot follow. End the stream properly; the call still settles.
        log.exception("request %s: unexpected error after the response started", call.request_id)
        error = internal_error(call.request_id)
        call.fail(error)
        await response.write(encode_event(to_openai_error(error)))
    if include_usage:
        outcome = call.compute_outcome("ok" if call.outcome is None else call.outcome.status)
        await response.write(prefix + b',"choices":[],"usage":'
                             + encode_json(outcome.usage.to_openai(outcome.cost_usd)) + b"}\n\n")
    await response.write(DONE)
    await response.write_eof()
    return response


def _delta(piece: Piece, first: bool) -> dict[str, Any]:
    delta: dict[str, Any] = dict(piece.delta)
    if first:
        delta = {"role": "assistant", **delta}
    if piece.tool_calls:
        delta["tool_calls"] = piece.tool_calls
    return delta


async def _complete(call: ChatCall) -> web.Response:
    info = call.info
    assert info is not None
    content: list[str] = []
    reasoning: list[str] = []
    tool_calls: dict[int, dict[str, Any]] = {}
    finish_reason: str | None = None
    async for piece in call:
        if "content" in piece.delta:
            content.append(piece.delta["content"])
        if "reasoning_content" in piece.delta:
            reasoning.append(piece.delta["reasoning_content"])
        for fragment in piece.tool_calls or ():
            _merge_tool_call(tool_calls, fragment)
        if piece.finish_reason:
            finish_reason = piece.finish_reason
    checks = call.checks
    if checks is not None and checks.structured_error is not None:
        raise StructuredOutputInvalid(checks.structured_error, param="response_format")
    outcome = call.compute_outcome("ok")
    text = "".join(content)
    if isinstance(call_body_format(call), dict) and text:
        text = strip_fence(text)  # Hermes likes ```json fences; the client asked for JSON
    message: dict[str, Any] = {"role": "assistant", "content": text if content or not tool_calls else None}
    if reasoning:
        message["reasoning_content"] = message["reasoning"] = "".join(reasoning)
    if tool_calls:
        message["tool_calls"] = [tool_calls[i] for i in sorted(tool_calls)]
        finish_reason = finish_reason or "tool_calls"
    body = {
        "id": f"chatcmpl-{call.request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": info.response_model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason or "stop"}],
        "usage": outcome.usage.to_openai(outcome.cost_usd),
    }
    return web.Response(body=encode_json(body), content_type="application/json",
                        headers=outcome_headers(outcome, checks.notes if checks is not None else []))


def outcome_headers(outcome: Outcome, notes: list[str]) -> dict[str, str]:
    """The money and token headers of a finished, non-streamed answer, and its notes."""
    usage = outcome.usage
    headers = {
        "x-hermes-cost-usd": usd_or_unknown(outcome.cost_usd),
        "x-hermes-prompt-tokens": str(usage.prompt_tokens),
        "x-hermes-completion-tokens": str(usage.completion_tokens),
        "x-hermes-reasoning-tokens": str(usage.reasoning_tokens),
    }
    if usage.estimated:
        headers["x-hermes-usage-estimated"] = "true"
    if notes:
        headers["x-hermes-note"] = header_text("; ".join(notes))
    return headers


def log_refused(request: web.Request, call: ChatCall | None, error: HermesError) -> None:
    """A request refused before any upstream work still gets its log line (admitted ones log at settle)."""
    if (call is None or call.info is None) and current_config(request.app).server.request_log:
        request_log.info("request", extra={"fields": {
            "request_id": request[REQUEST_ID], "status": "refused", "http_status": error.status,
            "error_code": error.code, "error": error.message}})


def call_body_format(call: ChatCall) -> Any:
    """The JSON ``response_format`` the request asked for, if any."""
    plan = call.plan
    form = plan.request.body.get("response_format") if plan is not None else None
    return form if isinstance(form, dict) and form.get("type") in ("json_object", "json_schema") else None


def header_text(text: str) -> str:
    """``text`` as one line of plain ASCII (a header value or an SSE comment)."""
    return " ".join(text.encode("ascii", "replace").decode().split())[:1000]


def _merge_tool_call(calls: dict[int, dict[str, Any]], fragment: dict[str, Any]) -> None:
    index = fragment.get("index", len(calls))
    if not isinstance(index, int):
        index = len(calls)
    current = calls.setdefault(index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
    if fragment.get("id"):
        current["id"] = fragment["id"]
    if fragment.get("type"):
        current["type"] = fragment["type"]
    function = fragment.get("function") or {}
    if function.get("name"):
        current["function"]["name"] += function["name"]
    if isinstance(function.get("arguments"), str):
        current["function"]["arguments"] += function["arguments"]


async def list_models(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    gateway = current_gateway(request.app)
    return web.json_response({"object": "list", "data": [
        entry for model in gateway.models_for(principal.team) for entry in _model_entries(request, model)
    ]})


async def get_model(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    gateway = current_gateway(request.app)
    wanted = request.match_info["model"]
    for model in gateway.models_for(principal.team):
        for entry in _model_entries(request, model):
            if entry["id"] == wanted:
                return web.json_response(entry)
    raise ModelNotFound(f"The model '{wanted}' does not exist", param="model")


def _model_entries(request: web.Request, model: Any) -> list[dict[str, Any]]:
    gateway = current_gateway(request.app)
    simulated = gateway.is_simulated(model)
    primary = (gateway.config.usable_routes(model) or model.routes)[0]  # what answers now
    price = gateway.prices.get(primary)
    base = {
        "object": "model",
        "created": 1755000000,
        "owned_by": "hermes-proxy",
        "context_window": model.context_window,
        "simulated": simulated,
        "upstream": primary.upstream + (" (simulated)" if simulated else ""),
        "routes": [route.label for route in model.routes],
        "pricing": {
            "input_usd_per_mtok": float(price.input_usd_per_mtok) if price else None,
            "output_usd_per_mtok": float(price.output_usd_per_mtok) if price else None,
        },
    }
    label = " (simulated)" if simulated else ""
    return [
        {**base, "id": model.alias, "description": (model.description or "Hermes 4") + label,
         "reasoning_default": model.default_reasoning},
        {**base, "id": f"{model.alias}:thinking", "description": f"{model.alias} with reasoning on{label}",
         "reasoning_default": True},
        {**base, "id": f"{model.alias}:fast", "description": f"{model.alias} with reasoning off{label}",
         "reasoning_default": False},
    ]


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    gateway = current_gateway(request.app)
    checks: dict[str, Any] = {}

    async def check(name: str, probe: Any) -> None:
        try:
            await asyncio.wait_for(probe(), READY_TIMEOUT_S)
            checks[name] = {"ok": True}
        except (HermesError, TimeoutError) as exc:
            message = exc.message if isinstance(exc, HermesError) else "timed out"
            checks[name] = {"ok": False, "error": message}

    probes = [check("ledger", request.app[LEDGER].ping)]
    probes += [check(f"upstream:{name}", upstream.ping) for name, upstream in gateway.upstreams.items()]
    probes += [check(name, probe) for name, probe in request.app[READY_PROBES].items()]
    await asyncio.gather(*probes)
    ready = all(c["ok"] for c in checks.values())
    return web.json_response({"status": "ready" if ready else "not ready", "checks": checks},
                             status=200 if ready else 503)

