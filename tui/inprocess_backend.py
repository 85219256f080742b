"""The chat's default backend: the proxy's gateway running in this process, billing the configured chat team.

No server is needed. The same pipeline as the HTTP surface runs: policy, reasoning, exact tokens, budget reservation,
upstream retry/failover, ``<think>`` splitting, settle. Heavy pieces (litellm) stay lazy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from hermes_proxy.config import Config, default_data_dir, load_config
from hermes_proxy.errors import (
    AuthenticationError,
    BudgetExceeded,
    HermesError,
    InvalidRequest,
    PermissionDenied,
    RateLimited,
    UpstreamError,
)
from hermes_proxy.ledger import open_ledger
from hermes_proxy.ledger.base import Ledger
from hermes_proxy.ledger.outbox import Outbox, keep_replaying
from hermes_proxy.pipeline import Gateway, Principal
from hermes_proxy.pricing import resolve_prices
from hermes_proxy.tokens import load_token_counter
from hermes_proxy.upstreams import build_upstream
from tui.backend import (
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


class InProcessBackend:
    def __init__(self, config: Config, gateway: Gateway, ledger: Ledger) -> None:
        self.config = config
        self.gateway = gateway
        self.ledger = ledger
        self._replayer: asyncio.Task[None] | None = None
        team = config.team(config.chat.team)
        assert team is not None  # config guarantees it
        self.principal = Principal(team=team)
        self.simulated = config.simulated_only
        upstreams = ", ".join(sorted({u.name + (" (SIMULATED)" if u.simulated else "") for u in config.upstreams}))
        self.label = f"in-process · {upstreams} · team {team.name}"

    @classmethod
    async def create(cls, config_path: str | None) -> InProcessBackend:
        try:
            config = load_config(config_path)
        except HermesError as exc:
            raise BackendError(str(exc), "invalid") from None
        return await cls.from_config(config)

    @classmethod
    async def from_config(cls, config: Config, *, ledger: Ledger | None = None) -> InProcessBackend:
        counter = await asyncio.to_thread(load_token_counter, config.tokens, data_dir=default_data_dir())
        if ledger is None:
            ledger = open_ledger(config.ledger)
            try:
                await ledger.start()
            except HermesError as exc:
                raise BackendError(f"ledger: {exc}", "other") from None
        upstreams = {u.name: build_upstream(u, counter=counter) for u in config.upstreams}
        prices = await asyncio.to_thread(resolve_prices, config)
        # settles the ledger could not write wait in the outbox (shared with a proxy on the same ledger)
        outbox = None if config.ledger.outbox_path is None else Outbox(config.ledger.outbox_path)
        gateway = Gateway(config, upstreams=upstreams, ledger=ledger, counter=counter, prices=prices, outbox=outbox)
        backend = cls(config, gateway, ledger)
        if outbox is not None:
            backend._replayer = asyncio.create_task(
                keep_replaying(ledger, outbox, every_s=config.ledger.outbox_replay_s))
        return backend

    async def models(self) -> list[ModelInfo]:
        result = []
        for model in self.gateway.models_for(self.principal.team):
            primary = (self.config.usable_routes(model) or model.routes)[0]  # what answers now
            price = self.gateway.prices.get(primary)
            simulated = self.gateway.is_simulated(model)
            result.append(ModelInfo(
                alias=model.alias,
                context_window=model.context_window,
                input_usd_per_mtok=price.input_usd_per_mtok if price else None,
                output_usd_per_mtok=price.output_usd_per_mtok if price else None,
                simulated=simulated,
                upstream=primary.upstream + (" (simulated)" if simulated else ""),
            ))
        return result

    async def budget(self) -> BudgetInfo | None:
        team = self.principal.team
        if not team.budgets:
            return None
        try:
            statuses = await self.ledger.budget_status(team)
        except HermesError:
            return None
        if not statuses:
            return None
        tightest = min(statuses, key=lambda s: s.remaining_usd)
        warning = next((f"{s.window} spend past soft limit ${s.soft_limit_usd}" for s in statuses if s.soft_exceeded),
                       None)
        return BudgetInfo(remaining_usd=tightest.remaining_usd, warning=warning, team=team.name)

    async def stream(self, *, model: str, messages: list[dict[str, Any]], reasoning: bool,
                     temperature: float | None = None, max_tokens: int | None = None) -> AsyncIterator[StreamEvent]:
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": True, "reasoning": reasoning}
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        call = self.gateway.chat(body, self.principal)
        try:
            async with call:
                info = call.info
                assert info is not None
                remaining = call.remaining_budget_usd()
                budget = (BudgetInfo(remaining_usd=remaining, warning=info.admission.warning,
                                     team=self.principal.team.name, reserved_usd=info.reserved_usd)
                          if remaining is not None else None)
                yield Started(model_label=info.response_model, simulated=info.simulated,
                              prompt_tokens=info.prompt_tokens, budget=budget, reasoning=info.reasoning.enabled)
                async for piece in call:
                    text = piece.delta.get("reasoning_content")
                    if text:
                        yield ReasoningDelta(text)
                    text = piece.delta.get("content")
                    if text:
                        yield ContentDelta(text)
                outcome = call.compute_outcome("ok")
            after = call.remaining_budget_usd()
            yield Finished(
                prompt_tokens=outcome.usage.prompt_tokens,
                completion_tokens=outcome.usage.completion_tokens,
                reasoning_tokens=outcome.usage.reasoning_tokens,
                cost_usd=outcome.cost_usd,
                estimated=outcome.usage.estimated,
                finish_reason=outcome.finish_reason,
                budget=BudgetInfo(remaining_usd=after, warning=info.admission.warning,
                                  team=self.principal.team.name, reserved_usd=info.reserved_usd)
                if after is not None else None,
                saved_usd=call.cache_saved_usd,
            )
        except HermesError as exc:
            raise BackendError(exc.message, _kind(exc), status=exc.status) from None

    async def aclose(self) -> None:
        await self.gateway.aclose()
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
        await self.ledger.close()


def _kind(error: HermesError) -> ErrorKind:
    if isinstance(error, BudgetExceeded):
        return "budget"
    if isinstance(error, (AuthenticationError, PermissionDenied)):
        return "auth"
    if isinstance(error, UpstreamError):
        return "upstream"
    if isinstance(error, (InvalidRequest, RateLimited)):
        return "invalid"
    return "other"
