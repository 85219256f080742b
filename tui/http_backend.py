"""The chat over HTTP: a running hermes-proxy (or any OpenAI-compatible server) through the ``openai`` SDK.

The proxy tells us more than the OpenAI API does, and this module reads it:

* response headers ``x-hermes-budget-remaining-usd``, ``x-hermes-budget-warning``, ``x-hermes-reserved-usd`` (what
  the request holds against the budget), ``x-hermes-prompt-tokens`` (the exact count, shown instead of the local
  estimate from the first token on) and ``x-hermes-reasoning``;
* ``delta.reasoning_content`` for the reasoning stream;
* in the final usage chunk, ``cost`` (USD), ``completion_tokens_details.reasoning_tokens`` and ``estimated``;
* on ``GET /v1/models``, each model's ``context_window``, ``pricing``, ``simulated`` and ``upstream``.

Errors become :class:`~tui.backend.BackendError` with a kind the chat can explain. This module imports ``openai``
(about a second), so the app imports it lazily, after its first screen is up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx2
import openai

from tui.backend import (
    DEFAULT_CONTEXT_WINDOW,
    BackendError,
    BudgetInfo,
    ContentDelta,
    ErrorKind,
    Finished,
    ModelInfo,
    ReasoningDelta,
    Started,
    StreamEvent,
)

BUDGET_REMAINING_HEADER = "x-hermes-budget-remaining-usd"
BUDGET_WARNING_HEADER = "x-hermes-budget-warning"
REASONING_HEADER = "x-hermes-reasoning"
TEAM_HEADER = "x-hermes-team"
RESERVED_HEADER = "x-hermes-reserved-usd"
PROMPT_TOKENS_HEADER = "x-hermes-prompt-tokens"
#: on an answer from the proxy's response cache: what it saved
CACHE_SAVED_HEADER = "x-hermes-cache-saved-usd"


class HttpBackend:
    """A :class:`~tui.backend.ChatBackend` talking to ``base_url`` (``.../v1`` is added when missing)."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout_s: float = 120.0) -> None:
        root = base_url.rstrip("/")
        self.label = root.removesuffix("/v1")
        self.simulated = False
        self._client = openai.AsyncOpenAI(
            base_url=root if root.endswith("/v1") else root + "/v1",
            api_key=api_key or "none",
            max_retries=0,  # the proxy retries upstreams itself; the user sees failures at once and can resend
            timeout=httpx2.Timeout(timeout_s, connect=5.0),
        )
        self._models: dict[str, ModelInfo] = {}
        self._budget: BudgetInfo | None = None

    async def models(self) -> list[ModelInfo]:
        try:
            page = await self._client.models.list()
        except openai.APIError as exc:
            raise _backend_error(exc, self.label) from None
        except httpx2.HTTPError as exc:
            raise BackendError(f"cannot reach {self.label}: {exc}", "network") from None
        models = [_model_info(item) for item in page.data]
        self._models = {m.alias: m for m in models}
        self.simulated = bool(models) and all(m.simulated for m in models)
        return models

    async def budget(self) -> BudgetInfo | None:
        """The budget as of the last reply's headers (the proxy reports it per request)."""
        return self._budget

    async def stream(self, *, model: str, messages: list[dict[str, Any]], reasoning: bool,
                     temperature: float | None = None, max_tokens: int | None = None) -> AsyncIterator[StreamEvent]:
        options: dict[str, Any] = {}  # the conversation's settings; left out (the defaults) when unset
        if temperature is not None:
            options["temperature"] = temperature
        if max_tokens is not None:
            options["max_tokens"] = max_tokens
        try:
            raw = await self._client.chat.completions.with_raw_response.create(  # type: ignore[call-overload]
                model=model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                extra_body={"reasoning": reasoning},
                **options,
            )
        except openai.APIError as exc:
            raise _backend_error(exc, self.label) from None
        except httpx2.HTTPError as exc:
            raise BackendError(f"cannot reach {self.label}: {exc}", "network") from None

        budget = _budget_from_headers(raw.headers)
        if budget is not None:
            self._budget = budget
        info = self._models.get(model)
        yield Started(
            model_label=f"{model} · {info.upstream}" if info and info.upstream else model,
            simulated=info.simulated if info else False,
            prompt_tokens=_int(raw.headers.get(PROMPT_TOKENS_HEADER)),
            budget=budget,
            reasoning=_parse_bool(raw.headers.get(REASONING_HEADER)),
        )

        chunks = raw.parse()
        finish_reason: str | None = None
        usage: Any = None
        try:
            async for chunk in chunks:
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.finish_reason is not None:
                        finish_reason = choice.finish_reason
                    delta = choice.delta
                    thought = getattr(delta, "reasoning_content", None)
                    if thought is None:
                        thought = getattr(delta, "reasoning", None)
                    if isinstance(thought, str) and thought:
                        yield ReasoningDelta(thought)
                    if delta.content:
                        yield ContentDelta(delta.content)
        except openai.APIError as exc:
            raise _backend_error(exc, self.label, mid_stream=True) from None
        except httpx2.HTTPError as exc:
            raise BackendError(f"lost the connection to {self.label}: {exc}", "network") from None
        finally:
            await chunks.close()

        yield self._finished(usage, finish_reason, budget, saved=_decimal(raw.headers.get(CACHE_SAVED_HEADER)))

    def _finished(self, usage: Any, finish_reason: str | None, budget: BudgetInfo | None, *,
                  saved: Decimal | None = None) -> Finished:
        if usage is None:
            return Finished(0, 0, 0, None, True, finish_reason, budget, saved_usd=saved)
        details = getattr(usage, "completion_tokens_details", None)
        reasoning_tokens = getattr(details, "reasoning_tokens", None) or 0
        cost = _decimal(getattr(usage, "cost", None))
        if budget is not None and budget.remaining_usd is not None and cost is not None:
            budget = replace(budget, remaining_usd=budget.remaining_usd - cost)
            self._budget = budget
        return Finished(
            prompt_tokens=usage.prompt_tokens or 0,
            completion_tokens=usage.completion_tokens or 0,
            reasoning_tokens=int(reasoning_tokens),
            cost_usd=cost,
            estimated=bool(getattr(usage, "estimated", False)),
            finish_reason=finish_reason,
            budget=budget,
            saved_usd=saved,
        )

    async def aclose(self) -> None:
        await self._client.close()


# --- parsing --------------------------------------------------------------------------------------------------------


def _model_info(item: Any) -> ModelInfo:
    pricing = getattr(item, "pricing", None)
    if not isinstance(pricing, Mapping):
        pricing = {}
    window = getattr(item, "context_window", None)
    upstream = getattr(item, "upstream", None)
    return ModelInfo(
        alias=item.id,
        context_window=window if isinstance(window, int) and window > 0 else DEFAULT_CONTEXT_WINDOW,
        input_usd_per_mtok=_decimal(pricing.get("input_usd_per_mtok")),
        output_usd_per_mtok=_decimal(pricing.get("output_usd_per_mtok")),
        simulated=getattr(item, "simulated", False) is True,
        upstream=upstream if isinstance(upstream, str) else (getattr(item, "owned_by", "") or ""),
    )


def _budget_from_headers(headers: Mapping[str, str]) -> BudgetInfo | None:
    remaining = headers.get(BUDGET_REMAINING_HEADER)
    warning = headers.get(BUDGET_WARNING_HEADER)
    if remaining is None and warning is None:
        return None
    return BudgetInfo(remaining_usd=_decimal(remaining), warning=warning or None, team=headers.get(TEAM_HEADER, ""),
                      reserved_usd=_decimal(headers.get(RESERVED_HEADER)))


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _parse_bool(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("on", "true", "1", "yes", "enabled"):
        return True
    if lowered in ("off", "false", "0", "no", "disabled"):
        return False
    return None


def _error_message(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, Mapping):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
    return exc.message


def _backend_error(exc: openai.APIError, where: str, *, mid_stream: bool = False) -> BackendError:
    message = _error_message(exc)
    if isinstance(exc, openai.APIConnectionError):  # includes timeouts
        lost = "lost the connection to" if mid_stream else "cannot reach"
        return BackendError(f"{lost} {where}: {message}", "network")
    status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
    code = exc.code or ""
    kind: ErrorKind
    if code == "insufficient_quota" or exc.type == "insufficient_quota":
        kind = "budget"
    elif status in (401, 403) or exc.type == "authentication_error":
        kind = "auth"
    elif status is not None and status >= 500:
        kind = "upstream"
    elif status in (400, 404, 413, 422):
        kind = "invalid"
    elif status == 429:
        kind, message = "other", f"rate limited: {message}"
    elif mid_stream:
        kind = "upstream"
    else:
        kind = "other"
    return BackendError(message, kind, status=status)
