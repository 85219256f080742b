"""One chat completion going through the gateway: admission, upstream with retry and failover, the answer shaped
piece by piece, usage and cost, and the settle that runs whatever happens (shielded from cancellation)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hermes_proxy.config import Route
from hermes_proxy.errors import (
    BudgetExceeded,
    HermesError,
    RoutesExhausted,
    UpstreamError,
    UpstreamStreamError,
)
from hermes_proxy.gateway import CallInfo, Gateway, Outcome, Piece, Plan, Principal
from hermes_proxy.ledger.base import Admission, RequestRecord
from hermes_proxy.pricing import cost_of
from hermes_proxy.reasoning import (
    OutputShaper,
    ThinkSplitter,
    continuation_payload,
    forced_answer_payload,
)
from hermes_proxy.upstreams.base import Upstream
from hermes_proxy.usage import Usage

log = logging.getLogger("hermes_proxy.gateway")
request_log = logging.getLogger("hermes_proxy.requests")

MAX_BACKOFF_S = 8.0
BIG_PROMPT_CHARS = 100_000


class ChatCall:
    """One chat completion going through the pipeline; an async context manager and an async iterator of pieces."""

    def __init__(self, gateway: Gateway, body: Any, principal: Principal, reasoning_header: str | None,
                 request_id: str) -> None:
        self._gateway = gateway
        self._body = body
        self._principal = principal
        self._reasoning_header = reasoning_header
        self.request_id = request_id
        self.started_at = datetime.now(UTC)
        self._t0 = time.perf_counter()
        self._ttft: float | None = None
        self.info: CallInfo | None = None
        self.outcome: Outcome | None = None
        self._plan: Plan | None = None
        self._admission: Admission | None = None
        self._route: Route | None = None
        self._upstream: Upstream | None = None
        self._payload: dict[str, Any] = {}
        self._stream: AsyncIterator[dict[str, Any]] | None = None
        self._first: dict[str, Any] | None = None
        self._splitter = ThinkSplitter()
        self._shaper: OutputShaper | None = None
        self._raw_usages: list[dict[str, Any]] = []
        #: usage of an upstream call the proxy cut short (reasoning budget): counted here, so estimated
        self._cut_usages: list[Usage] = []
        self._finish_reason: str | None = None
        self._error: HermesError | None = None
        self._tool_calls: list[dict[str, Any]] = []
        self._reasoning_tokens_live = 0
        self._last_reasoning = ""
        self._settled = False
        self._t_upstream_start: float | None = None
        self._t_upstream_end: float | None = None
        self._t_finished: float | None = None
        self._in_flight: AbstractContextManager[Any] | None = None
        #: OpenAI's x-ratelimit-* headers for this request (empty when no rate limit applies)
        self.rate_headers: dict[str, str] = {}

    @property
    def overhead_ms(self) -> float:
        """Time spent in the proxy itself: before the first upstream attempt, and after the upstream finished."""
        now = self._t_finished or time.perf_counter()
        if self._t_upstream_start is None:
            return (now - self._t0) * 1000
        before = self._t_upstream_start - self._t0
        after = now - self._t_upstream_end if self._t_upstream_end is not None else 0.0
        return (before + after) * 1000

    @property
    def total_ms(self) -> float:
        return ((self._t_finished or time.perf_counter()) - self._t0) * 1000

    @property
    def ttft_ms(self) -> float | None:
        return None if self._ttft is None else (self._ttft - self._t0) * 1000

    # --- entering: plan, reserve, connect -----------------------------------------------------------------------

    async def __aenter__(self) -> ChatCall:
        gateway = self._gateway
        if _rough_size(self._body) > BIG_PROMPT_CHARS:
            # counting ~128k tokens takes tens of ms of CPU: keep the event loop serving other streams meanwhile
            plan = await asyncio.to_thread(gateway.plan, self._body, self._principal, self._reasoning_header)
        else:
            plan = gateway.plan(self._body, self._principal, self._reasoning_header)
        self._plan = plan
        team, key = self._principal.team, self._principal.key
        metrics = gateway.metrics
        if gateway.rate_limiter is not None:
            decision = await gateway.rate_limiter.admit(team, key.id if key else None, plan.prompt_tokens)
            if not decision.allowed:
                if metrics is not None:
                    metrics.request_refused(team=team.name, model=plan.model.alias, reason="rate_limit")
                raise decision.error()
            self.rate_headers = decision.headers
        try:
            self._admission = await gateway.ledger.reserve(team, key, plan.reserve_usd)
        except BudgetExceeded:
            if metrics is not None:
                metrics.request_refused(team=team.name, model=plan.model.alias, reason="budget")
            raise
        if metrics is not None:
            self._in_flight = metrics.in_flight()
            self._in_flight.__enter__()
        gateway._call_started()
        try:
            await self._connect()
        except BaseException as exc:
            if isinstance(exc, HermesError):
                self._error = exc
            await self._finish_call(_status_for(type(exc)))
            raise
        assert self._route is not None and self._upstream is not None
        simulated = getattr(self._upstream, "simulated", False)
        self._shaper = OutputShaper(plan.decision.format)
        self.info = CallInfo(
            request_id=self.request_id,
            model=plan.model.alias,
            response_model=plan.model.alias + (" (simulated)" if simulated else ""),
            route=self._route,
            reasoning=plan.decision,
            prompt_tokens=plan.prompt_tokens,
            max_tokens=plan.max_tokens,
            max_tokens_source=plan.max_tokens_source,
            reserved_usd=plan.reserve_usd,
            admission=self._admission,
            simulated=simulated,
            context_window=plan.model.context_window,
        )
        return self

    async def _connect(self) -> None:
        """Try each route in order, retrying retryable errors with backoff; stop at the first chunk."""
        plan = self._plan
        assert plan is not None
        gateway = self._gateway
        last: UpstreamError | None = None
        metrics = gateway.metrics
        upstream_stream = plan.request.stream or plan.decision.max_reasoning_tokens is not None
        self._t_upstream_start = time.perf_counter()
        previous: Route | None = None
        failures: list[tuple[str, str, UpstreamError]] = []
        for route in plan.routes:
            if previous is not None and metrics is not None:
                metrics.failover(previous.upstream, route.upstream)
            previous = route
            upstream = gateway.upstreams[route.upstream]
            payload = gateway.payload_for(plan, route, upstream)
            attempts = upstream.config.max_retries + 1
            for attempt in range(attempts):
                stream = upstream.chat(payload, stream=upstream_stream)
                try:
                    first = await anext(stream)
                except UpstreamError as exc:
                    await _close(stream)
                    last = exc
                    log.warning("request %s: %s (attempt %d/%d)", self.request_id, exc.message, attempt + 1, attempts)
                    if metrics is not None:
                        metrics.upstream_error(route.upstream, exc.code or "error")
                    if not exc.retryable:
                        break
                    if attempt + 1 < attempts:
                        if metrics is not None:
                            metrics.upstream_retry(route.upstream)
                        backoff = upstream.config.retry_backoff_s * (2 ** attempt)
                        if exc.retry_after is not None:
                            backoff = max(backoff, exc.retry_after)
                        await gateway._sleep(min(backoff, MAX_BACKOFF_S))
                    continue
                except StopAsyncIteration:
                    last = UpstreamStreamError(route.upstream, "returned an empty response")
                    continue
                except BaseException:
                    await _close(stream)
                    raise
                self._route, self._upstream, self._payload = route, upstream, payload
                self._stream, self._first = stream, first
                return
            if last is not None:
                failures.append((route.upstream, route.model, last))
            if last is not None and last.status == 400:
                # the upstream refused the request itself (bad parameter, too long): another route would too
                raise last
            last = None
        assert failures
        if len(failures) == 1:
            raise failures[0][2]
        raise RoutesExhausted(failures)

    # --- iterating: shape the answer -----------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Piece]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[Piece]:
        plan, shaper = self._plan, self._shaper
        assert plan is not None and shaper is not None and self._stream is not None
        cap = plan.decision.max_reasoning_tokens
        if self._upstream is not None and self._upstream.config.kind == "openrouter":
            cap = None  # OpenRouter enforces reasoning.max_tokens itself and then answers
        counter = self._gateway.counter
        chunk: dict[str, Any] | None = self._first
        stream = self._stream
        try:
            while chunk is not None:
                choices = self._note_usage(chunk)
                if choices and isinstance(choices[0], dict):
                    piece = self._step(choices[0])
                    if piece is not None:
                        if self._ttft is None:
                            self._ttft = time.perf_counter()
                        yield piece
                    if cap is not None and self._finish_reason is None and not self._splitter_content_started():
                        if self._last_reasoning:
                            self._reasoning_tokens_live += counter.count_text(self._last_reasoning)
                        if self._reasoning_tokens_live >= cap:
                            async for extra in self._end_reasoning_at_cap(stream):
                                yield extra
                            return
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    chunk = None
            tail = self._flush()
            if tail is not None:
                yield tail
        except UpstreamStreamError as exc:
            self._error = exc
            tail = self._flush()
            if tail is not None:
                yield tail
            raise
        finally:
            self._t_upstream_end = time.perf_counter()
            await _close(stream)

    def _note_usage(self, chunk: dict[str, Any]) -> Any:
        """Keep the chunk's usage, if it carries one; return its choices."""
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._raw_usages.append(usage)
        return chunk.get("choices")

    def _splitter_content_started(self) -> bool:
        return self._shaper is not None and self._shaper.has_content

    def _step(self, choice: dict[str, Any]) -> Piece | None:
        assert self._shaper is not None
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
        if not isinstance(reasoning, str):
            reasoning = ""
        content = delta.get("content") or ""
        r2, c2 = self._splitter.feed(content) if content else ("", "")
        self._last_reasoning = reasoning + r2
        shaped = self._shaper.shape(self._last_reasoning, c2) if (self._last_reasoning or c2) else {}
        tool_calls = delta.get("tool_calls")
        finish = choice.get("finish_reason")
        if finish:
            tail_r, tail_c = self._splitter.finish()
            if tail_r or tail_c:
                shaped = _merge(shaped, self._shaper.shape(tail_r, tail_c))
            final = self._shaper.finish()
            if final:
                shaped = _merge(shaped, final)
            self._finish_reason = finish
        if not (shaped or tool_calls or finish):
            return None
        piece = Piece(delta=shaped, tool_calls=tool_calls if isinstance(tool_calls, list) else None,
                      finish_reason=finish or None)
        if piece.tool_calls:
            self._tool_calls.extend(piece.tool_calls)
        return piece

    def _flush(self) -> Piece | None:
        """The stream ended without a finish_reason (cut, or missing [DONE]): release what the splitter held."""
        if self._finish_reason is not None or self._shaper is None:
            return None
        r, c = self._splitter.finish()
        shaped = self._shaper.shape(r, c) if (r or c) else {}
        final = self._shaper.finish()
        shaped = _merge(shaped, final) if final else shaped
        if self._error is None:
            self._finish_reason = "length" if self._plan and self._completion_guess() >= self._plan.max_tokens \
                else "stop"
        return Piece(delta=shaped, finish_reason=self._finish_reason) if (shaped or self._error is None) else None

    def _completion_guess(self) -> int:
        assert self._shaper is not None
        return self._gateway.counter.count_text(self._shaper.reasoning_text + self._shaper.content_text)

    async def _end_reasoning_at_cap(self, stream: AsyncIterator[dict[str, Any]]) -> AsyncIterator[Piece]:
        """The reasoning budget is spent: stop thinking and get an answer anyway where the upstream can continue."""
        await _close(stream)
        plan, shaper, upstream = self._plan, self._shaper, self._upstream
        assert plan is not None and shaper is not None and upstream is not None
        if not any(isinstance(raw, dict) for raw in self._raw_usages):
            # the upstream never reported this call's usage (we hung up on it): bill what we saw, estimated
            thought = self._gateway.counter.count_completion(shaper.reasoning_text, "")[1]
            self._cut_usages.append(Usage(prompt_tokens=plan.prompt_tokens, completion_tokens=thought,
                                          reasoning_tokens=thought, estimated=True))
        remaining = plan.max_tokens - self._reasoning_tokens_live
        follow = None
        if remaining > 0:
            kind = upstream.config.kind
            # vLLM continues the assistant message after a forced </think>; an upstream that cannot continue a
            # message gets a second request, reasoning off, that carries the reasoning so far and asks for the answer
            follow = (continuation_payload(self._payload, kind, shaper.reasoning_text, remaining)
                      if upstream.supports_continuation else None)
            if follow is None:
                follow = forced_answer_payload(self._payload, kind, shaper.reasoning_text, remaining)
        if follow is None:
            final = shaper.finish()
            self._finish_reason = "length"
            yield Piece(delta=final, finish_reason="length")
            return
        self._splitter = ThinkSplitter(expect_reasoning=False)
        stream2 = upstream.chat(follow, stream=True)
        self._stream = stream2
        try:
            async for chunk in stream2:
                choices = self._note_usage(chunk)
                if choices and isinstance(choices[0], dict):
                    # everything after the forced </think> is answer, even a stray tag
                    piece = self._step_answer(choices[0])
                    if piece is not None:
                        yield piece
        except UpstreamError as exc:
            self._error = exc if isinstance(exc, UpstreamStreamError) else UpstreamStreamError(
                exc.upstream, exc.message)
            raise self._error from None
        finally:
            await _close(stream2)
        tail = self._flush()
        if tail is not None:
            yield tail

    def _step_answer(self, choice: dict[str, Any]) -> Piece | None:
        assert self._shaper is not None
        delta = choice.get("delta") or {}
        content = delta.get("content") or ""
        if not self._shaper.has_content:
            content = content.lstrip()
        shaped = self._shaper.shape("", content) if content else {}
        finish = choice.get("finish_reason")
        if finish:
            final = self._shaper.finish()
            shaped = _merge(shaped, final) if final else shaped
            self._finish_reason = finish
        if shaped or finish:
            return Piece(delta=shaped, finish_reason=finish or None)
        return None

    # --- leaving: usage, cost, settle ----------------------------------------------------------------------------

    def usage(self) -> Usage:
        """The upstream's usage when it reported one, else counted here and marked estimated."""
        plan, shaper = self._plan, self._shaper
        assert plan is not None
        counter = self._gateway.counter
        reasoning_text = shaper.reasoning_text if shaper else ""
        content_text = shaper.content_text if shaper else ""
        parsed = [u for u in (Usage.from_openai(raw) for raw in self._raw_usages) if u is not None]
        parsed += self._cut_usages
        if parsed:
            prompt = sum(u.prompt_tokens for u in parsed)
            completion = sum(u.completion_tokens for u in parsed)
            cached = sum(u.cached_prompt_tokens for u in parsed)
            costs = [u.upstream_cost_usd for u in parsed if u.upstream_cost_usd is not None]
            # the upstream's own cost counts only when every call reported one
            upstream_cost = sum(costs, Decimal(0)) if len(costs) == len(parsed) else None
            has_details = any(isinstance(raw.get("completion_tokens_details"), dict)
                              and raw["completion_tokens_details"].get("reasoning_tokens") is not None
                              for raw in self._raw_usages)
            if has_details or self._cut_usages:
                reasoning = sum(u.reasoning_tokens for u in parsed)
            elif reasoning_text:
                reasoning = counter.count_completion(reasoning_text, "")[1]
            else:
                reasoning = 0
            return Usage(prompt_tokens=prompt, completion_tokens=completion, reasoning_tokens=min(reasoning, completion),
                         cached_prompt_tokens=cached, upstream_cost_usd=upstream_cost,
                         estimated=any(u.estimated for u in parsed))
        completion, reasoning = (0, 0)
        if reasoning_text or content_text or self._tool_calls:
            completion, reasoning = counter.count_completion(reasoning_text, content_text, tool_calls=self._tool_calls
                                                             or None)
        prompt = plan.prompt_tokens if self._stream is not None else 0
        return Usage(prompt_tokens=prompt, completion_tokens=completion, reasoning_tokens=reasoning, estimated=True)

    def compute_outcome(self, status: str) -> Outcome:
        usage = self.usage()
        price = self._gateway.prices.get(self._route.label) if self._route else None
        cost = cost_of(usage, price) if self._stream is not None else Decimal(0)
        self.outcome = Outcome(usage=usage, cost_usd=cost, finish_reason=self._finish_reason, status=status,
                               error=self._error)
        return self.outcome

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None:
            status = "upstream_error" if self._error is not None else "ok"
        else:
            status = _status_for(exc_type)
        await self._finish_call(status)

    async def _finish_call(self, status: str) -> None:
        if self._settled:
            return
        self._settled = True
        self._t_finished = time.perf_counter()
        if self._t_upstream_start is not None and self._t_upstream_end is None:
            self._t_upstream_end = self._t_finished
        self._gateway._call_ended()
        if self._in_flight is not None:
            self._in_flight.__exit__(None, None, None)
        if self.outcome is None or self.outcome.status != status:
            self.compute_outcome(status)
        task = asyncio.ensure_future(self._settle())
        self._gateway._settles.add(task)
        task.add_done_callback(self._gateway._settles.discard)
        # shielded: a client that goes away cancels the handler, never the bill
        await asyncio.shield(task)

    async def _settle(self) -> None:
        assert self.outcome is not None and self._admission is not None and self._plan is not None
        principal, plan, outcome = self._principal, self._plan, self.outcome
        record = RequestRecord(
            request_id=self.request_id,
            started_at=self.started_at,
            team=principal.team.name,
            key_id=principal.key.id if principal.key else None,
            key_name=principal.key.name if principal.key else None,
            model=plan.model.alias,
            route=self._route.label if self._route else "",
            reasoning=plan.decision.enabled,
            prompt_tokens=outcome.usage.prompt_tokens,
            completion_tokens=outcome.usage.completion_tokens,
            reasoning_tokens=outcome.usage.reasoning_tokens,
            cost_usd=outcome.cost_usd,
            estimated=outcome.usage.estimated,
            status=outcome.status,
            latency_ms=(time.perf_counter() - self._t0) * 1000,
            ttft_ms=self.ttft_ms,
        )
        gateway = self._gateway
        try:
            await gateway.ledger.settle(self._admission.hold, record)
        except Exception:
            log.exception("request %s: could not settle its hold; it expires by itself", self.request_id)
        key_id = principal.key.id if principal.key else None
        if gateway.rate_limiter is not None:
            try:
                await gateway.rate_limiter.record_completion(principal.team, key_id, outcome.usage.completion_tokens)
            except Exception:
                log.exception("request %s: could not record completion tokens for rate limits", self.request_id)
        total_s = (self._t_finished or time.perf_counter()) - self._t0
        if gateway.metrics is not None:
            gateway.metrics.request_finished(
                team=record.team, model=record.model, route=record.route, status=record.status,
                prompt_tokens=record.prompt_tokens, completion_tokens=record.completion_tokens,
                reasoning_tokens=record.reasoning_tokens, cost_usd=record.cost_usd,
                overhead_s=self.overhead_ms / 1000, ttft_s=None if self.ttft_ms is None else self.ttft_ms / 1000,
                total_s=total_s)
            spent = outcome.cost_usd or Decimal(0)
            for status in self._admission.budgets:
                gateway.metrics.set_budget_remaining(record.team, status.window,
                                                     status.remaining_usd + self._admission.hold.amount_usd - spent)
        if gateway.config.server.request_log:
            request_log.info("request", extra={"fields": self._log_fields(record)})

    def _log_fields(self, record: RequestRecord) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "request_id": record.request_id, "team": record.team, "key": record.key_name, "model": record.model,
            "route": record.route, "reasoning": record.reasoning, "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens, "reasoning_tokens": record.reasoning_tokens,
            "cost_usd": None if record.cost_usd is None else str(record.cost_usd), "estimated": record.estimated,
            "status": record.status, "overhead_ms": round(self.overhead_ms, 3),
            "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 1), "total_ms": round(self.total_ms, 1),
        }
        if self._error is not None:
            fields["error"] = self._error.message
        if self._gateway.config.server.log_prompts and self._plan is not None:
            fields["messages"] = self._plan.request.messages
            fields["answer"] = self._shaper.content_text if self._shaper else ""
        return fields

    def remaining_budget_usd(self) -> Decimal | None:
        """The tightest window's remaining budget: after the reservation, or once the outcome is known, after this
        request's actual cost replaced its reservation."""
        if self._admission is None or self._admission.remaining_usd is None:
            return None
        remaining = self._admission.remaining_usd
        if self.outcome is not None:
            remaining += self._admission.hold.amount_usd - (self.outcome.cost_usd or Decimal(0))
        return remaining


def _rough_size(body: Any) -> int:
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return 0
    return sum(len(m["content"]) for m in body["messages"] if isinstance(m, dict) and isinstance(m.get("content"), str))


def _status_for(exc_type: type[BaseException]) -> str:
    if issubclass(exc_type, UpstreamError):
        return "upstream_error"
    if issubclass(exc_type, (asyncio.CancelledError, ConnectionError)):
        return "client_disconnected"
    return "error"


def _merge(first: dict[str, str], second: dict[str, str]) -> dict[str, str]:
    merged = dict(first)
    for key, value in second.items():
        merged[key] = merged.get(key, "") + value
    return merged


async def _close(stream: AsyncIterator[Any]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
