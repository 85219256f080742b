"""A scripted :class:`~tui.backend.ChatBackend` for Pilot tests and the start-up benchmark.

Each call to :meth:`FakeBackend.stream` plays the next :class:`Script` (the last one repeats): reasoning chunks (only
when reasoning is on, as a real model would), content chunks, optional delays, an optional pause that the test
releases, and an optional failure of any kind. Every call records the messages it received and how it ended.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from textual.pilot import Pilot

from tui.app import HermesChatApp
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
    estimate_tokens,
)

FIXED_NOW = datetime(2025, 8, 26, 9, 30, tzinfo=UTC)  # the store's clock in tests and snapshots
AppFactory = Callable[..., HermesChatApp]


def fixed_clock() -> float:
    """A monotonic clock that never moves: no timing numbers vary in snapshots."""
    return 1000.0


DEFAULT_MODELS = (
    ModelInfo("hermes-4-405b", 131072, Decimal("1.0"), Decimal("3.0"), simulated=False, upstream="fake-upstream"),
    ModelInfo("hermes-4-70b", 131072, Decimal("0.13"), Decimal("0.4"), simulated=False, upstream="fake-upstream"),
)
DEFAULT_BUDGET = BudgetInfo(remaining_usd=Decimal("25.00"), warning=None, team="default")


@dataclass(frozen=True)
class Script:
    reasoning: tuple[str, ...] = ()
    content: tuple[str, ...] = ("Hello", " from", " the fake", " backend.")
    delay: float = 0.0
    fail: ErrorKind | None = None
    fail_message: str = "scripted failure"
    fail_after: int = 0  # chunks delivered before failing; 0 refuses the request before it starts
    hold_after: int | None = None  # pause after this many chunks until FakeBackend.release()
    prompt_tokens: int = 12
    reasoning_tokens: int | None = None  # None: estimated from the text
    completion_tokens: int | None = None
    cost_usd: Decimal | None = Decimal("0.0042")
    finish_reason: str = "stop"
    budget: BudgetInfo | None = None
    crash: bool = False  # raise a plain exception instead of a BackendError


@dataclass
class Call:
    model: str
    messages: list[dict[str, Any]]
    reasoning: bool
    temperature: float | None = None
    max_tokens: int | None = None
    chunks_sent: int = 0
    outcome: Literal["finished", "stopped", "failed"] | None = None
    sent_text: str = ""


@dataclass
class FakeBackend:
    scripts: Sequence[Script] = (Script(),)
    model_list: Sequence[ModelInfo] = DEFAULT_MODELS
    budget_info: BudgetInfo | None = DEFAULT_BUDGET
    label: str = "fake backend"
    simulated: bool = False
    calls: list[Call] = field(default_factory=list)
    closed: bool = False
    held: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.gate.set()

    async def models(self) -> list[ModelInfo]:
        return list(self.model_list)

    async def budget(self) -> BudgetInfo | None:
        return self.budget_info

    async def aclose(self) -> None:
        self.closed = True

    def stream(self, *, model: str, messages: list[dict[str, Any]], reasoning: bool,
               temperature: float | None = None, max_tokens: int | None = None) -> AsyncIterator[StreamEvent]:
        script = self.scripts[min(len(self.calls), len(self.scripts) - 1)]
        call = Call(model=model, messages=copy.deepcopy(messages), reasoning=reasoning, temperature=temperature,
                    max_tokens=max_tokens)
        self.calls.append(call)
        return self._play(script, call)

    async def _play(self, script: Script, call: Call) -> AsyncIterator[StreamEvent]:
        if script.fail is not None and script.fail_after == 0:
            call.outcome = "failed"
            raise BackendError(script.fail_message, script.fail)
        yield Started(model_label=f"{call.model} · fake-upstream", simulated=self.simulated,
                      prompt_tokens=script.prompt_tokens, budget=script.budget or self.budget_info)
        chunks: list[StreamEvent] = [ReasoningDelta(t) for t in script.reasoning] if call.reasoning else []
        chunks += [ContentDelta(t) for t in script.content]
        try:
            for index, chunk in enumerate(chunks):
                if script.hold_after is not None and index == script.hold_after:
                    self.held.set()
                    await self.gate.wait()
                if script.fail is not None and index == script.fail_after:
                    call.outcome = "failed"
                    if script.crash:
                        raise RuntimeError(script.fail_message)
                    raise BackendError(script.fail_message, script.fail)
                if script.delay:
                    await asyncio.sleep(script.delay)
                yield chunk
                call.chunks_sent += 1
                call.sent_text += chunk.text  # type: ignore[union-attr]
            reasoning_text = "".join(c.text for c in chunks if isinstance(c, ReasoningDelta))
            reasoning_tokens = (script.reasoning_tokens if script.reasoning_tokens is not None
                                else estimate_tokens(reasoning_text))
            completion = (script.completion_tokens if script.completion_tokens is not None
                          else reasoning_tokens + estimate_tokens("".join(script.content)))
            call.outcome = "finished"
            yield Finished(prompt_tokens=script.prompt_tokens, completion_tokens=completion,
                           reasoning_tokens=reasoning_tokens, cost_usd=script.cost_usd, estimated=False,
                           finish_reason=script.finish_reason, budget=script.budget or self.budget_info)
        finally:
            if call.outcome is None:  # cancelled mid-stream: a real backend bills what arrived
                call.outcome = "stopped"


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], object], within: float = 5.0) -> None:
    """Let the app run until ``predicate()`` is true (fails after ``within`` seconds)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.01)
