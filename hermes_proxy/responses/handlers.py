"""``POST /v1/responses``, ``GET`` and ``DELETE /v1/responses/{id}``: thin handlers over the chat pipeline.

A Responses request is translated (:mod:`.request`) and run by ``gateway.chat`` like any chat completion (same
plan, admission, budgets, rate limits, billing, metrics and request log, same ``x-hermes-*`` and ``x-ratelimit-*``
headers); its pieces become output items and stream events (:mod:`.output`); with ``store`` (the default) the result
is kept for the team (:mod:`.store`). The response id is the ledger's request id (``resp_…`` for ``req_…``), so a
stored response and its ledger row are found from each other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from hermes_proxy.appkeys import LEDGER, current_config, current_gateway
from hermes_proxy.auth import authenticate
from hermes_proxy.errors import (
    HermesError,
    InvalidRequest,
    NotFound,
    StructuredOutputInvalid,
    UpstreamStreamError,
    internal_error,
)
from hermes_proxy.pipeline import ChatCall
from hermes_proxy.responses.output import OutputBuilder, failure, response_object, usage_object
from hermes_proxy.responses.request import ResponsesRequest, chat_body, parse_request
from hermes_proxy.responses.store import ResponseStore, StoredResponse, open_response_store
from hermes_proxy.routes import (
    call_headers,
    expect_handler,
    header_text,
    log_refused,
    outcome_headers,
    read_json,
    request_ids,
)
from hermes_proxy.sse import KEEPALIVE

log = logging.getLogger("hermes_proxy")
RESPONSE_STORE: web.AppKey[ResponseStore] = web.AppKey("response_store", object)  # type: ignore[arg-type]
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
#: chat completions names in the pipeline's 400s -> the Responses names the client sent
_RENAMES = (
    (re.compile(r"response_format\.json_schema\."), "text.format."),
    (re.compile(r"response_format"), "text.format"),
    (re.compile(r"(tools\[\d+\])\.function\."), r"\1."),
    (re.compile(r"tool_choice\.function\."), "tool_choice."),
    (re.compile(r"(?<![\w.])max_tokens\b"), "max_output_tokens"),
    (re.compile(r"(?<![\w.])messages(\[\d+\])?(?=[.'\s]|$)"), "input"),
)


def add_responses_routes(app: web.Application) -> None:
    """The routes, and the store in the ledger's database (started after the ledger, in a cleanup context)."""

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        app[RESPONSE_STORE] = open_response_store(app[LEDGER])
        yield

    app.cleanup_ctx.append(store_ctx)
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/responses", create_response, expect_handler=expect_handler)
        app.router.add_get(f"{prefix}/responses/{{response_id}}", get_response, expect_handler=expect_handler)
        app.router.add_delete(f"{prefix}/responses/{{response_id}}", delete_response, expect_handler=expect_handler)


async def create_response(request: web.Request) -> web.StreamResponse:
    call: ChatCall | None = None
    try:
        principal = await authenticate(request)
        parsed = parse_request(await read_json(request))
        store = request.app[RESPONSE_STORE]
        history: list[dict[str, Any]] = []
        if parsed.previous_response_id is not None:
            previous = await store.get(principal.team.name, parsed.previous_response_id)
            if previous is None:
                raise NotFound(f"Previous response with id '{parsed.previous_response_id}' not found.",
                               param="previous_response_id", code="previous_response_not_found")
            history = previous.conversation
        gateway = current_gateway(request.app)
        call = gateway.chat(chat_body(parsed, history), principal,
                            reasoning_header=request.headers.get("x-hermes-reasoning"), **request_ids(request))
        async with call:
            exchange = _Exchange(request, call, parsed, history, principal.team.name, store)
            if parsed.stream:
                return await exchange.stream()
            response = await exchange.complete()
            response.headers.update(call_headers(call))
            response.headers["x-hermes-overhead-ms"] = f"{call.overhead_ms:.2f}"
            await response.prepare(request)
            await response.write_eof()
        return response
    except HermesError as error:
        if isinstance(error, InvalidRequest):
            _in_responses_terms(error)
        log_refused(request, call, error)
        raise


async def get_response(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    response_id = request.match_info["response_id"]
    stored = await request.app[RESPONSE_STORE].get(principal.team.name, response_id)
    if stored is None:
        raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return web.json_response(stored.response, dumps=_JSON.encode)


async def delete_response(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    response_id = request.match_info["response_id"]
    if not await request.app[RESPONSE_STORE].delete(principal.team.name, response_id):
        raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return web.json_response({"id": response_id, "object": "response", "deleted": True})


@dataclass
class _Exchange:
    """One admitted Responses request: its call, the output being built, and where it is kept."""

    request: web.Request
    call: ChatCall
    parsed: ResponsesRequest
    history: list[dict[str, Any]]
    team: str
    store: ResponseStore

    def __post_init__(self) -> None:
        self.id = "resp_" + self.call.request_id.removeprefix("req_")
        self.created_at = time.time()
        self.builder = OutputBuilder(json_format=self.parsed.json_format, events=self.parsed.stream)

    def response(self, status: str, usage: dict[str, Any] | None = None,
                 error: dict[str, Any] | None = None) -> dict[str, Any]:
        info = self.call.info
        assert info is not None
        return response_object(self.parsed, response_id=self.id, created_at=self.created_at,
                               model=info.response_model, status=status, output=self.builder.output, usage=usage,
                               error=error)

    async def keep(self, body: dict[str, Any]) -> bool:
        """Store the finished response (``store: true``); False when the store failed (logged, never raised: the
        answer was generated and billed, the client gets it)."""
        if not self.parsed.store:
            return True
        created = datetime.fromtimestamp(self.created_at, UTC)
        days = current_config(self.request.app).responses.store_days
        stored = StoredResponse(id=self.id, team=self.team, created_at=created,
                                expires_at=created + timedelta(days=days), response=body,
                                input_items=[*self.history, *self.parsed.input_items])
        try:
            await self.store.put(stored)
        except HermesError as error:
            log.warning("request %s: response %s not stored: %s", self.call.request_id, self.id, error.message)
            return False
        return True

    async def complete(self) -> web.Response:
        builder, call = self.builder, self.call
        async for piece in call:
            builder.feed(piece)
        builder.close()
        checks = call.checks
        if checks is not None and checks.structured_error is not None:
            raise StructuredOutputInvalid(checks.structured_error, param="text.format")
        outcome = call.compute_outcome("ok")
        body = self.response("incomplete" if builder.incomplete else "completed", usage_object(outcome))
        stored = await self.keep(body)
        notes = list(checks.notes) if checks is not None else []
        if not stored:
            notes.append("the response could not be stored (the ledger database failed); it is not retrievable")
        return web.Response(body=_JSON.encode(body).encode(), content_type="application/json",
                            headers=outcome_headers(outcome, notes))

    async def stream(self) -> web.StreamResponse:
        builder, call = self.builder, self.call
        info = call.info
        assert info is not None
        headers = call_headers(call)
        headers.update({"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
                        "X-Accel-Buffering": "no", "x-hermes-prompt-tokens": str(info.prompt_tokens),
                        "x-hermes-overhead-ms": f"{call.overhead_ms:.2f}"})
        out = web.StreamResponse(headers=headers)
        await out.prepare(self.request)
        started = self.response("in_progress")
        await out.write(_encode([builder.event("response.created", response=started),
                                 builder.event("response.in_progress", response=started)]))
        error: HermesError | None = None
        try:
            async for piece in call:
                if piece.keepalive:
                    await out.write(KEEPALIVE)
                    continue
                events = builder.feed(piece)
                if events:
                    await out.write(_encode(events))
            checks = call.checks
            if checks is not None:
                for note in checks.notes:
                    await out.write(f": x-hermes-note: {header_text(note)}\n\n".encode())
                if checks.structured_error is not None:
                    error = StructuredOutputInvalid(checks.structured_error, param="text.format")
                    call.fail(error)
        except UpstreamStreamError as exc:
            error = exc
        except (ConnectionError, asyncio.CancelledError):
            raise  # the client is gone: nothing more to write; the call settles as cancelled
        except Exception:
            log.exception("request %s: unexpected error after the response started", call.request_id)
            error = internal_error(call.request_id)
            call.fail(error)
        events = builder.close()
        outcome = call.compute_outcome("ok" if call.outcome is None else call.outcome.status)
        status = "failed" if error is not None else "incomplete" if builder.incomplete else "completed"
        body = self.response(status, usage_object(outcome), failure(error.message) if error is not None else None)
        if not await self.keep(body):
            events.append({"comment": "the response could not be stored (the ledger database failed)"})
        if error is not None:
            events.append(builder.event("error", code=error.code, message=error.message, param=error.param))
        events.append(builder.event(f"response.{status}", response=body))
        await out.write(_encode(events))
        await out.write_eof()
        return out


def _encode(events: list[dict[str, Any]]) -> bytes:
    """SSE as OpenAI sends Responses events: ``event: <type>`` and one ``data:`` line each."""
    lines = []
    for event in events:
        if "comment" in event:
            lines.append(f": x-hermes-note: {event['comment']}\n\n")
        else:
            lines.append(f"event: {event['type']}\ndata: {_JSON.encode(event)}\n\n")
    return "".join(lines).encode()


def _in_responses_terms(error: InvalidRequest) -> None:
    """The pipeline checks the translated chat body: its 400s name chat fields, the client sent Responses ones."""
    for pattern, name in _RENAMES:
        error.message = pattern.sub(name, error.message)
        if error.param is not None:
            error.param = pattern.sub(name, error.param)
    error.args = (error.message,)
