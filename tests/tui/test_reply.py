"""A reply driven directly (no Pilot, no widgets) against the scripted fake backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from fake_backend import DEFAULT_MODELS, FakeBackend, Script

from tui.backend import BudgetInfo, ContentDelta, Finished, Started, StreamEvent
from tui.reply import Reply
from tui.store import Store

MODEL = DEFAULT_MODELS[0]  # $1 in / $3 out per million tokens, 131072-token context
ANSWER = "Hello from the fake backend."
ASK = [{"role": "user", "content": "Hi there"}]


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def begin(backend: FakeBackend, store: Store, *, reasoning: bool = False, conversation_id: int | None = None,
          clock: Clock | None = None) -> Reply:
    if conversation_id is None:
        conversation_id = store.create_conversation("Test", model=MODEL.alias).id
        store.add_message(conversation_id, "user", "Hi there")
    return Reply.begin(backend=backend, store=store, conversation_id=conversation_id, messages=list(ASK),
                       model=MODEL.alias, reasoning=reasoning, model_info=MODEL, clock=clock or Clock())


async def test_a_finished_reply_is_saved_with_its_real_numbers(store: Store) -> None:
    fake = FakeBackend(scripts=(Script(cost_usd=Decimal("0.0042")),))
    reply = begin(fake, store)
    assert store.message(reply.message_id).status == "streaming"  # the row exists before anything streams

    result = await reply.run()

    assert result.kept and not result.failed and result.status == "complete" and result.error is None
    saved = store.message(reply.message_id)
    assert saved == result.message
    assert (saved.role, saved.content, saved.reasoning, saved.status) == ("assistant", ANSWER, "", "complete")
    assert (saved.prompt_tokens, saved.completion_tokens, saved.reasoning_tokens) == (12, 7, 0)
    assert saved.cost_usd == Decimal("0.0042") and not saved.estimated
    assert saved.finish_reason == "stop" and saved.model == MODEL.alias
    assert fake.calls[0].messages == ASK and fake.calls[0].model == MODEL.alias and not fake.calls[0].reasoning
    assert fake.calls[0].outcome == "finished"
    assert reply.budget == fake.budget_info
    assert reply.done and reply.result is result


async def test_reasoning_is_kept_apart_from_the_answer(store: Store) -> None:
    fake = FakeBackend(scripts=(Script(reasoning=("Let me ", "think."), reasoning_tokens=5),))
    reply = begin(fake, store, reasoning=True)
    phases: list[str] = []

    async def seen(event: StreamEvent) -> None:
        phases.append(reply.phase)

    result = await reply.run(seen)

    assert fake.calls[0].reasoning
    assert (result.message.reasoning, result.message.content) == ("Let me think.", ANSWER)
    assert result.message.reasoning_tokens == 5 and result.message.completion_tokens == 5 + 7
    # Started, two reasoning pieces, four answer pieces, Finished
    assert phases == ["answering", "thinking", "thinking"] + ["answering"] * 5


async def test_each_event_is_applied_before_the_caller_sees_it(store: Store) -> None:
    fake = FakeBackend()
    reply = begin(fake, store)
    seen: list[tuple[type[Any], str, bool]] = []

    async def on_event(event: StreamEvent) -> None:
        seen.append((type(event), reply.content, reply.started))

    await reply.run(on_event)

    assert seen[0] == (Started, "", True)
    assert [text for kind, text, _ in seen if kind is ContentDelta] == [
        "Hello", "Hello from", "Hello from the fake", ANSWER]
    assert seen[-1][0] is Finished


async def test_live_numbers_while_streaming(store: Store) -> None:
    clock = Clock()
    fake = FakeBackend(scripts=(Script(content=("a" * 40, "b" * 40, "c" * 40), hold_after=2),))
    conversation = store.create_conversation("Costs so far", model=MODEL.alias)
    earlier = store.add_message(conversation.id, "assistant", "", model=MODEL.alias)
    store.finish_message(earlier.id, content="before", reasoning="", status="complete", cost_usd=Decimal("0.5"))
    reply = begin(fake, store, conversation_id=conversation.id, clock=clock)
    assert reply.phase == "waiting" and reply.meter.tokens_per_s(live=True) is None

    async def tick(event: StreamEvent) -> None:
        clock.now += 1.0

    task = asyncio.create_task(reply.run(tick))
    await fake.held.wait()

    meter = reply.meter
    assert reply.content == "a" * 40 + "b" * 40 and reply.phase == "answering"
    assert meter.prompt_tokens == 12 and not meter.prompt_estimated  # the exact count from Started
    assert meter.completion_tokens == 20 and meter.estimated  # about four characters a token until Finished
    assert meter.cost_usd == Decimal(12 * 1 + 20 * 3) / 1_000_000 and meter.cost_estimated
    assert reply.chat_cost == Decimal("0.5") + meter.cost_usd  # the conversation so far plus this reply
    assert meter.tokens_per_s(live=False) == pytest.approx(20 / 1.0)  # first token at 1001, last at 1002
    assert meter.context_pct == pytest.approx(100 * 32 / 131072)

    fake.release()
    result = await task
    assert result.message.completion_tokens == 30 and not result.message.estimated
    assert reply.chat_cost == Decimal("0.5") + Decimal("0.0042")


async def test_a_stopped_reply_keeps_its_partial_answer(store: Store) -> None:
    fake = FakeBackend(scripts=(Script(hold_after=2),))
    reply = begin(fake, store)
    task = asyncio.create_task(reply.run())
    await fake.held.wait()

    reply.stop()
    result = await task

    assert result.kept and result.status == "stopped" and result.error is None
    saved = store.message(reply.message_id)
    assert (saved.content, saved.status) == ("Hello from", "stopped")
    assert saved.completion_tokens == 3 and saved.estimated  # counted locally: no Finished arrived
    assert saved.cost_usd == Decimal(12 * 1 + 3 * 3) / 1_000_000
    assert fake.calls[0].outcome == "stopped"  # the backend saw the stream closed, and bills what arrived
    assert not task.cancelled()
    reply.stop()  # once it has ended, stopping again does nothing
    assert store.message(reply.message_id).status == "stopped"


async def test_stopping_before_it_runs_sends_nothing(store: Store) -> None:
    fake = FakeBackend()
    reply = begin(fake, store)
    reply.stop()

    result = await reply.run()

    assert result.status == "stopped" and fake.calls == []
    assert result.message.content == "" and result.message.completion_tokens is None


async def test_a_refused_request_records_the_error_and_no_usage(store: Store) -> None:
    fake = FakeBackend(scripts=(Script(fail="budget", fail_message="Team budget exhausted"),))
    reply = begin(fake, store)

    result = await reply.run()

    assert result.failed and not result.kept
    assert result.error is not None and (result.error.kind, result.error.message) == ("budget",
                                                                                     "Team budget exhausted")
    saved = store.message(reply.message_id)
    assert (saved.status, saved.error, saved.error_kind) == ("error", "Team budget exhausted", "budget")
    assert saved.content == "" and saved.prompt_tokens is None and saved.cost_usd is None


async def test_a_failure_mid_stream_keeps_what_arrived(store: Store) -> None:
    fake = FakeBackend(scripts=(Script(fail="upstream", fail_after=2, fail_message="upstream went away"),))
    reply = begin(fake, store)

    result = await reply.run()

    saved = result.message
    assert result.failed and (saved.status, saved.content) == ("error", "Hello from")
    assert (saved.error, saved.error_kind) == ("upstream went away", "upstream")
    assert saved.completion_tokens == 3 and saved.estimated


async def test_an_unexpected_exception_is_recorded_not_raised(store: Store) -> None:
    fake = FakeBackend(scripts=(Script(fail="other", fail_after=1, crash=True, fail_message="boom"),))
    reply = begin(fake, store)

    result = await reply.run()

    assert result.failed and result.error is not None
    assert (result.error.kind, result.error.message) == ("other", "RuntimeError: boom")
    assert result.message.content == "Hello" and result.message.error == "RuntimeError: boom"


async def test_a_failure_while_drawing_fails_the_reply_but_saves_it(store: Store) -> None:
    fake = FakeBackend()
    reply = begin(fake, store)

    async def broken(event: StreamEvent) -> None:
        if isinstance(event, ContentDelta) and event.text == " from":
            raise ValueError("cannot draw")

    result = await reply.run(broken)

    assert result.failed and result.message.error == "ValueError: cannot draw"
    assert result.message.content == "Hello from"  # the piece was applied before it was drawn
    assert fake.calls[0].outcome == "stopped"  # the stream was closed


async def test_cancelled_from_outside_it_is_saved_as_stopped_and_the_cancel_goes_on(store: Store) -> None:
    fake = FakeBackend(scripts=(Script(hold_after=1),))
    reply = begin(fake, store)
    task = asyncio.create_task(reply.run())
    await fake.held.wait()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    saved = store.message(reply.message_id)
    assert (saved.status, saved.content) == ("stopped", "Hello")
    assert reply.result is not None and reply.result.status == "stopped"


async def test_end_saves_a_reply_that_never_ran_and_only_once(store: Store) -> None:
    reply = begin(FakeBackend(), store)

    first = reply.end("stopped")
    again = reply.end("error")

    assert again is first and store.message(reply.message_id).status == "stopped"
    assert await reply.run() is first


async def test_the_gateway_turning_reasoning_off_is_reported(store: Store) -> None:
    budget = BudgetInfo(remaining_usd=Decimal("3.50"), warning="past the soft limit", team="research")

    class PolicyBackend(FakeBackend):
        def stream(self, *, model: str, messages: list[dict[str, Any]], reasoning: bool,
                   temperature: float | None = None, max_tokens: int | None = None) -> AsyncIterator[StreamEvent]:
            async def play() -> AsyncIterator[StreamEvent]:
                yield Started(model_label=model, simulated=False, prompt_tokens=9, budget=None, reasoning=False)
                yield ContentDelta("No thinking allowed.")
                yield Finished(prompt_tokens=9, completion_tokens=5, reasoning_tokens=0, cost_usd=None,
                               estimated=True, finish_reason="length", budget=budget)
            return play()

    reply = begin(PolicyBackend(), store, reasoning=True)
    result = await reply.run()

    assert reply.reasoning_overridden and reply.reasoning_applied is False
    assert reply.budget == budget
    saved = result.message
    assert saved.finish_reason == "length" and saved.estimated
    assert saved.cost_usd == Decimal(9 * 1 + 5 * 3) / 1_000_000  # priced locally when the backend gives no cost


async def test_asking_for_reasoning_as_the_gateway_applies_it_is_no_override(store: Store) -> None:
    reply = begin(FakeBackend(), store, reasoning=True)
    await reply.run()
    assert not reply.reasoning_overridden  # the fake does not say what it applied
