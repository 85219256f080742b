"""One assistant reply, from the backend's stream to the saved message: plain Python, no widgets.

A :class:`Reply` is started from the messages to send, a model, the reasoning switch and the conversation's
:class:`~tui.settings.ChatParams` (:meth:`Reply.begin` adds its
row to the store). :meth:`Reply.run` streams it: each event first updates the reply (its text, reasoning and live
numbers in :attr:`Reply.meter`), then goes to the caller's ``on_event`` to be drawn. :meth:`Reply.stop` stops it; the
backend bills what arrived and the partial answer is kept. However it ends, the message is saved before ``run``
returns (and before anything else is awaited), and ``run`` reports a :class:`ReplyResult`: kept (complete or
stopped) or failed, with the error.

Whoever draws the reply reads its state (:attr:`~Reply.content`, :attr:`~Reply.reasoning`, :attr:`~Reply.phase`,
:attr:`~Reply.meter`, :attr:`~Reply.chat_cost`) and never writes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from tui.backend import (
    BackendError,
    BudgetInfo,
    ChatBackend,
    ContentDelta,
    Finished,
    ModelInfo,
    ReasoningDelta,
    Started,
    StreamEvent,
    estimate_prompt_tokens,
    unexpected_error,
)
from tui.meter import ReplyMeter
from tui.settings import NO_PARAMS, ChatParams
from tui.store import MessageStatus, Store, StoredMessage

EndStatus = Literal["complete", "stopped", "error"]
Phase = Literal["waiting", "thinking", "answering"]
OnEvent = Callable[[StreamEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ReplyResult:
    """How a reply ended, as saved. ``message`` is the stored row; ``error`` is set when it failed."""

    status: EndStatus
    message: StoredMessage
    error: BackendError | None = None

    @property
    def kept(self) -> bool:
        """The answer stands (complete, or stopped with what arrived)."""
        return self.status != "error"

    @property
    def failed(self) -> bool:
        return self.status == "error"


class Reply:
    """The reply being streamed into one assistant message (see the module docstring)."""

    def __init__(self, *, backend: ChatBackend, store: Store, conversation_id: int, message_id: int,
                 messages: list[dict[str, Any]], model: str, reasoning: bool, model_info: ModelInfo | None,
                 clock: Callable[[], float], chat_cost_before: Decimal = Decimal(0),
                 params: ChatParams = NO_PARAMS) -> None:
        self.backend = backend
        self.store = store
        self.conversation_id = conversation_id
        self.message_id = message_id
        self.messages = messages
        self.model = model
        self.reasoning_on = reasoning
        self.params = params
        self.meter = ReplyMeter(model_info, estimate_prompt_tokens(messages), clock)
        self.chat_cost_before = chat_cost_before
        self.content = ""
        self.reasoning = ""
        self.started = False
        self.reasoning_applied: bool | None = None  # what the gateway says it applied, when it says
        self.budget: BudgetInfo | None = None  # the latest budget the backend reported during the reply
        self.finish_reason: str | None = None
        self.status: MessageStatus = "streaming"
        self.error: BackendError | None = None
        self.result: ReplyResult | None = None
        self._task: asyncio.Task[Any] | None = None
        self._stop_requested = False

    @classmethod
    def begin(cls, *, backend: ChatBackend, store: Store, conversation_id: int, messages: list[dict[str, Any]],
              model: str, reasoning: bool, model_info: ModelInfo | None, clock: Callable[[], float],
              params: ChatParams = NO_PARAMS) -> Reply:
        """Add the (empty, streaming) assistant message to the conversation and return its reply, not yet run."""
        chat_cost_before = store.conversation_cost(conversation_id)
        row = store.add_message(conversation_id, "assistant", "", model=model, reasoning_on=reasoning,
                                status="streaming")
        return cls(backend=backend, store=store, conversation_id=conversation_id, message_id=row.id,
                   messages=messages, model=model, reasoning=reasoning, model_info=model_info, clock=clock,
                   chat_cost_before=chat_cost_before, params=params)

    # --- state for the screen -------------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """The reply has ended and is saved."""
        return self.result is not None

    @property
    def phase(self) -> Phase:
        if not self.started and self.meter.first_token_at is None:
            return "waiting"
        if self.reasoning and not self.content:
            return "thinking"
        return "answering"

    @property
    def reasoning_overridden(self) -> bool:
        """The gateway applied another reasoning state than the one asked for (team policy)."""
        return self.reasoning_applied is not None and self.reasoning_applied != self.reasoning_on

    @property
    def saved_usd(self) -> Decimal | None:
        """Answered from the proxy's response cache: what that saved (None: it was not)."""
        finished = self.meter.finished
        return finished.saved_usd if finished is not None else None

    @property
    def chat_cost(self) -> Decimal:
        """The conversation's cost including this reply so far."""
        return self.chat_cost_before + (self.meter.cost_usd or Decimal(0))

    # --- running --------------------------------------------------------------------------------------------------

    async def run(self, on_event: OnEvent | None = None) -> ReplyResult:
        """Stream the reply, calling ``on_event`` after each event is applied; save it; report how it ended.

        A failure (``BackendError`` or anything unexpected, including in ``on_event``) ends the reply as failed; it
        is never raised. :meth:`stop` ends it as stopped. If the task running this is cancelled from outside, the
        reply is saved as stopped and the cancellation goes on.
        """
        if self.result is not None:
            return self.result
        if self._task is not None:
            raise RuntimeError("this reply is already running")
        if self._stop_requested:
            return self.end("stopped")
        self._task = asyncio.current_task()
        stream = None
        cancelled_from_outside = False
        status: EndStatus
        error: BackendError | None = None
        try:
            stream = self.backend.stream(model=self.model, messages=self.messages, reasoning=self.reasoning_on,
                                         temperature=self.params.temperature, max_tokens=self.params.max_tokens)
            async for event in stream:
                self._apply(event)
                if on_event is not None:
                    await on_event(event)
            status = "complete"
        except asyncio.CancelledError:
            status = "stopped"
            if self._stop_requested and self._task is not None:
                self._task.uncancel()
            else:
                cancelled_from_outside = True
        except BackendError as exc:
            status, error = "error", exc
        except Exception as exc:  # a bug or an unexpected failure: record it, never crash the caller
            status, error = "error", unexpected_error(exc)
        finally:
            self._task = None
        result = self.end(status, error)
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with suppress(Exception):
                await aclose()
        if cancelled_from_outside:
            raise asyncio.CancelledError
        return result

    def stop(self) -> None:
        """Stop the reply: what arrived is kept. Nothing happens once it has ended."""
        if self.result is not None or self._stop_requested:
            return
        self._stop_requested = True
        if self._task is not None:
            self._task.cancel()

    def end(self, status: EndStatus, error: BackendError | None = None) -> ReplyResult:
        """Record how the reply ended and save it, synchronously. Only the first call counts; it returns the result.

        ``run`` calls this itself; call it directly for a reply whose ``run`` never got to start.
        """
        if self.result is not None:
            return self.result
        self.status, self.error = status, error
        meter = self.meter
        counted = self.started or meter.finished is not None or bool(self.content or self.reasoning)
        message = self.store.finish_message(
            self.message_id,
            content=self.content,
            reasoning=self.reasoning,
            status=status,
            prompt_tokens=meter.prompt_tokens if counted else None,
            completion_tokens=meter.completion_tokens if counted else None,
            reasoning_tokens=meter.reasoning_tokens if counted else None,
            cost_usd=meter.cost_usd if counted else None,
            estimated=meter.estimated or meter.cost_estimated,
            finish_reason=self.finish_reason,
            error=error.message if error else None,
            error_kind=error.kind if error else None,
        )
        self.result = ReplyResult(status, message, error)
        return self.result

    def _apply(self, event: StreamEvent) -> None:
        meter = self.meter
        if isinstance(event, Started):
            self.started = True
            meter.on_started(event)
            self.reasoning_applied = event.reasoning
            if event.budget is not None:
                self.budget = event.budget
        elif isinstance(event, ReasoningDelta):
            self.reasoning += event.text
            meter.on_reasoning(event.text)
        elif isinstance(event, ContentDelta):
            self.content += event.text
            meter.on_content(event.text)
        elif isinstance(event, Finished):
            meter.on_finished(event)
            self.finish_reason = event.finish_reason
            if event.budget is not None:
                self.budget = event.budget
