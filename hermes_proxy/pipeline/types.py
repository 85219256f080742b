"""What the stages of one request hand each other and the callers: who asks, what is known before the first byte,
one shaped piece of the answer, the outcome; and the services a call runs on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hermes_proxy.alerts.events import BudgetAlerts
from hermes_proxy.config import Config, Route
from hermes_proxy.errors import HermesError
from hermes_proxy.ledger.base import Admission, KeyRecord, Ledger
from hermes_proxy.ledger.outbox import Outbox
from hermes_proxy.metrics import Metrics
from hermes_proxy.pipeline.probe import PriceProbes
from hermes_proxy.pricing import Prices
from hermes_proxy.ratelimit import RateLimiter
from hermes_proxy.reasoning import ReasoningDecision
from hermes_proxy.tokens import TokenCounter
from hermes_proxy.upstreams.base import Upstream
from hermes_proxy.usage import Usage
from policies.types import TeamPolicy

if TYPE_CHECKING:
    from hermes_proxy.cache.store import CacheStore


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a team (and the key it used, if any)."""

    team: TeamPolicy
    key: KeyRecord | None = None


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What is known before the first byte: for response headers and the chat's status line."""

    request_id: str
    model: str
    response_model: str
    route: Route
    reasoning: ReasoningDecision
    prompt_tokens: int
    max_tokens: int
    max_tokens_source: str
    reserved_usd: Decimal
    admission: Admission
    simulated: bool
    context_window: int


@dataclass(slots=True)
class Piece:
    """One step of the answer: delta fields for the client (already shaped), tool-call fragments, a finish reason;
    or a keep-alive (nothing to send yet, but the upstream is producing: hidden reasoning)."""

    delta: dict[str, Any] = field(default_factory=dict)
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    keepalive: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    usage: Usage
    cost_usd: Decimal | None
    finish_reason: str | None
    status: str
    error: HermesError | None = None


class CallTracker:
    """The calls running on one gateway and the settles still being written: for graceful shutdown and for retiring
    a gateway after a config reload only once nothing uses its upstream clients."""

    def __init__(self) -> None:
        self.active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.settles: set[asyncio.Task[None]] = set()

    def started(self) -> None:
        self.active += 1
        self._idle.clear()

    def ended(self) -> None:
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    def add_settle(self, task: asyncio.Task[None]) -> None:
        self.settles.add(task)
        task.add_done_callback(self.settles.discard)

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def drain(self) -> None:
        while self.settles:
            await asyncio.gather(*list(self.settles), return_exceptions=True)


@dataclass(frozen=True, slots=True)
class Services:
    """What a call runs on; built once per gateway (a config reload builds a new one)."""

    config: Config
    upstreams: Mapping[str, Upstream]
    ledger: Ledger
    counter: TokenCounter
    prices: Prices
    rate_limiter: RateLimiter | None
    metrics: Metrics | None
    sleep: Callable[[float], Any]
    tracker: CallTracker
    outbox: Outbox | None = None  # where settles the ledger could not write wait for it (None: memory ledger)
    #: routes whose real price a request is finding out (one at a time per route on this process)
    probes: PriceProbes = field(default_factory=PriceProbes)
    #: budget alerts (None: no outbox, as in the terminal chat)
    alerts: BudgetAlerts | None = None
    #: the response cache's store (None: no team can use the cache here)
    cache: CacheStore | None = None
