"""Stage 4, connect: each route in order, retrying what may work on another try (with backoff, honouring
Retry-After), until the upstream has sent the first piece of content. Until then nothing has reached the client, so
a failure, even after a role-only first chunk, still moves on to the next attempt or route.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from hermes_proxy.config import Route
from hermes_proxy.errors import RoutesExhausted, UpstreamError, UpstreamStreamError
from hermes_proxy.pipeline.plan import Plan, upstream_payload
from hermes_proxy.pipeline.types import Services
from hermes_proxy.upstreams.base import Chunk, Upstream

log = logging.getLogger("hermes_proxy.gateway")
MAX_BACKOFF_S = 8.0


@dataclass(slots=True)
class Connection:
    """An upstream answering: the chunks read so far (up to and including the first with content) and the rest."""

    route: Route
    upstream: Upstream
    payload: dict[str, Any]
    pending: list[Chunk]
    rest: AsyncIterator[Chunk]


async def connect(services: Services, plan: Plan, request_id: str) -> Connection:
    metrics = services.metrics
    upstream_stream = plan.request.stream or plan.decision.max_reasoning_tokens is not None
    failures: list[tuple[str, str, UpstreamError]] = []
    previous: Route | None = None
    for route in plan.routes:
        if previous is not None and metrics is not None:
            metrics.failover(previous.upstream, route.upstream)
        previous = route
        upstream = services.upstreams[route.upstream]
        payload = upstream_payload(services.config, plan, route, upstream.dialect)
        attempts = upstream.config.max_retries + 1
        last: UpstreamError | None = None
        for attempt in range(attempts):
            stream = upstream.chat(payload, stream=upstream_stream)
            try:
                pending = await _until_content(stream)
            except UpstreamError as exc:
                await close_stream(stream)
                last = exc
                log.warning("request %s: %s (attempt %d/%d)", request_id, exc.message, attempt + 1, attempts)
                if metrics is not None:
                    metrics.upstream_error(route.upstream, exc.code or "error")
                if not (exc.retryable or isinstance(exc, UpstreamStreamError)):
                    break
                if attempt + 1 < attempts:
                    if metrics is not None:
                        metrics.upstream_retry(route.upstream)
                    backoff = upstream.config.retry_backoff_s * (2 ** attempt)
                    if exc.retry_after is not None:
                        backoff = max(backoff, exc.retry_after)
                    await services.sleep(min(backoff, MAX_BACKOFF_S))
                continue
            except BaseException:
                await close_stream(stream)
                raise
            if not pending:
                last = UpstreamStreamError(route.upstream, "returned an empty response")
                continue
            return Connection(route, upstream, payload, pending, stream)
        if last is not None:
            failures.append((route.upstream, route.model, last))
            if last.status == 400:
                # the upstream refused the request itself (bad parameter, too long): another route would too
                raise last
    assert failures
    if len(failures) == 1:
        raise failures[0][2]
    raise RoutesExhausted(failures)


async def _until_content(stream: AsyncIterator[Chunk]) -> list[Chunk]:
    """The chunks up to and including the first that carries content, a tool call or a finish reason (all of them if
    the stream ends first)."""
    pending: list[Chunk] = []
    async for chunk in stream:
        pending.append(chunk)
        if has_content(chunk):
            break
    return pending


def has_content(chunk: Chunk) -> bool:
    choices = chunk.get("choices")
    if not choices or not isinstance(choices[0], dict):
        return False
    choice = choices[0]
    if choice.get("finish_reason"):
        return True
    delta = choice.get("delta")
    return isinstance(delta, dict) and any(delta.get(field) for field in (
        "content", "reasoning_content", "reasoning", "tool_calls", "refusal"))


async def close_stream(stream: AsyncIterator[Any]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
