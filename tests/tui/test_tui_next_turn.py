"""What the next turn will cost, shown under the prompt while the user types: the pure preview and the chat showing it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from fake_backend import DEFAULT_MODELS, AppFactory, FakeBackend, Script, wait_for
from textual.pilot import Pilot
from textual.widgets import Static, TextArea

from hermes_proxy.money import format_usd
from tui.app import HermesChatApp
from tui.backend import DEFAULT_CONTEXT_WINDOW, ModelInfo, estimate_prompt_tokens, estimate_tokens
from tui.next_turn import DEBOUNCE_S, HistoryTokens, next_turn, next_turn_from
from tui.screens.chat import ChatScreen
from tui.settings import NO_PARAMS, ChatParams, ChatSettings
from tui.store import Store
from tui.transcript import chat_messages

SIZE = (120, 40)
BIG, SMALL = DEFAULT_MODELS  # hermes-4-405b ($1 in / $3 out per million), hermes-4-70b ($0.13 / $0.4)
MILLION = Decimal(1_000_000)
FAKE_ANSWER = "Hello from the fake backend."  # the fake's scripted answer


def expected_text(prompt_tokens: int, model: ModelInfo = BIG, max_tokens: int | None = None) -> str:
    """The preview worked out by hand: input at the input price; up to max_tokens (else the context left) out."""
    assert model.input_usd_per_mtok is not None and model.output_usd_per_mtok is not None
    output = max_tokens if max_tokens is not None else model.context_window - prompt_tokens
    low = prompt_tokens * model.input_usd_per_mtok / MILLION
    high = low + output * model.output_usd_per_mtok / MILLION
    return f"next ~{prompt_tokens:,} in · {format_usd(low, places=4)}–{format_usd(high, places=4)}"


def draft_tokens(text: str) -> int:
    return 4 + estimate_tokens(text)


# --- the pure preview -------------------------------------------------------------------------------------------------


def test_a_blank_draft_has_no_preview() -> None:
    assert next_turn([], "", BIG, NO_PARAMS) is None
    assert next_turn([{"role": "user", "content": "hi"}], "  \n\t ", BIG, NO_PARAMS) is None


def test_the_prompt_is_the_history_the_system_prompt_and_the_draft() -> None:
    history = [{"role": "system", "content": "Be brief." * 10}, {"role": "user", "content": "What is DNS?" * 7},
               {"role": "assistant", "content": "A phone book for the internet." * 5}]
    draft = "And what is a CNAME record?"
    turn = next_turn(history, draft, BIG, NO_PARAMS)
    assert turn is not None
    # what the reply's live numbers will estimate for the same messages, the draft sent as the next user message
    assert turn.prompt_tokens == estimate_prompt_tokens([*history, {"role": "user", "content": draft}])
    assert turn.history_tokens == estimate_prompt_tokens(history)
    assert turn.draft_tokens == draft_tokens(draft)
    assert (turn.max_output_tokens, turn.output_source) == (131072 - turn.prompt_tokens, "context")
    assert turn.input_usd == turn.prompt_tokens * Decimal("1.0") / MILLION
    assert turn.max_usd == (turn.prompt_tokens * Decimal("1.0") + (131072 - turn.prompt_tokens) * Decimal("3.0")) / MILLION
    assert not turn.over_context
    assert turn.texts()[0] == expected_text(turn.prompt_tokens)


def test_the_exact_text() -> None:
    turn = next_turn([], "x" * 400, BIG, NO_PARAMS)  # 3 + 4 + 100 tokens
    assert turn is not None and turn.prompt_tokens == 107
    # $0.000107 in; up to + 130,965 × $3/M = $0.393002
    assert turn.texts() == ("next ~107 in · $0.0001–$0.393", "next $0.0001–$0.393", "next ~107 in")
    assert "107 tokens" in turn.explanation() and "not sent back" in turn.explanation()


def test_max_tokens_is_the_upper_bound_when_set() -> None:
    turn = next_turn([], "x" * 4000, SMALL, ChatParams(max_tokens=512))
    assert turn is not None
    assert (turn.max_output_tokens, turn.output_source) == (512, "max_tokens")
    assert turn.max_usd == (turn.prompt_tokens * Decimal("0.13") + 512 * Decimal("0.4")) / MILLION
    assert turn.texts()[0] == expected_text(turn.prompt_tokens, SMALL, max_tokens=512)
    assert "max tokens" in turn.explanation()


def test_a_longer_history_costs_more() -> None:
    short = next_turn([{"role": "user", "content": "hi"}], "next", BIG, ChatParams(max_tokens=100))
    long = next_turn([{"role": "user", "content": "hi" * 500}], "next", BIG, ChatParams(max_tokens=100))
    assert short is not None and long is not None
    assert long.prompt_tokens > short.prompt_tokens
    assert long.input_usd is not None and short.input_usd is not None and long.input_usd > short.input_usd
    assert long.max_usd is not None and short.max_usd is not None and long.max_usd > short.max_usd


def test_over_the_context_window() -> None:
    tiny = ModelInfo("tiny", 100, Decimal(1), Decimal(3), simulated=False, upstream="x")
    turn = next_turn([], "x" * 400, tiny, NO_PARAMS)
    assert turn is not None and turn.over_context and turn.max_output_tokens == 0
    assert turn.texts() == ("⚠ next ~107 in · over the 100 context", "⚠ over context")
    assert "does not fit" in turn.explanation()
    # exactly full: no room left for the answer
    full = next_turn_from(100 - draft_tokens("x"), "x", tiny, NO_PARAMS)
    assert full is not None and full.prompt_tokens == 100 and full.over_context
    # one token of room: it fits
    room = next_turn_from(99 - draft_tokens("x"), "x", tiny, NO_PARAMS)
    assert room is not None and not room.over_context


def test_max_tokens_that_do_not_fit_the_window_warn_too() -> None:
    tiny = ModelInfo("tiny", 200, Decimal(1), Decimal(3), simulated=False, upstream="x")
    turn = next_turn([], "x" * 400, tiny, ChatParams(max_tokens=150))  # 107 + 150 > 200
    assert turn is not None and turn.over_context
    assert turn.texts()[0] == "⚠ next ~107 in + max 150 out · over the 200 context"
    fits = next_turn([], "x" * 400, tiny, ChatParams(max_tokens=93))  # 107 + 93 = 200
    assert fits is not None and not fits.over_context


def test_unknown_prices_or_model_show_tokens_only() -> None:
    unpriced = ModelInfo("local", 8192, None, None, simulated=False, upstream="x")
    turn = next_turn([], "hello", unpriced, NO_PARAMS)
    assert turn is not None and turn.input_usd is None and turn.texts() == ("next ~9 in",)
    assert "unknown" in turn.explanation()
    none = next_turn([], "hello", None, NO_PARAMS)
    assert none is not None and none.context_window == DEFAULT_CONTEXT_WINDOW and none.texts() == ("next ~9 in",)


def test_the_draft_counts_as_it_is_sent() -> None:
    """Trailing blank lines are not sent; a draft of blank lines is nothing."""
    assert next_turn([], "hello\n\n  ", BIG, NO_PARAMS) == next_turn([], "hello", BIG, NO_PARAMS)


def test_earlier_reasoning_is_not_counted(store: Store) -> None:
    conversation = store.create_conversation("c", system_prompt="You are terse.")
    store.add_message(conversation.id, "user", "Why is the sky blue?")
    answer = store.add_message(conversation.id, "assistant", "", status="streaming")
    store.finish_message(answer.id, content="Rayleigh scattering.", reasoning="Let me think at length. " * 200,
                         status="complete", prompt_tokens=10, completion_tokens=1300, reasoning_tokens=1290,
                         cost_usd=Decimal("0.004"), estimated=False, finish_reason="stop", error=None,
                         error_kind=None)
    messages = chat_messages(conversation.system_prompt, store.messages(conversation.id))
    turn = next_turn(messages, "And sunsets?", BIG, NO_PARAMS)
    assert turn is not None
    assert turn.history_tokens == 3 + (4 + estimate_tokens("You are terse.")) + (
        4 + estimate_tokens("Why is the sky blue?")) + (4 + estimate_tokens("Rayleigh scattering."))


def test_the_history_is_estimated_once_per_conversation() -> None:
    cache = HistoryTokens()
    loads: list[int] = []

    def messages() -> list[dict[str, Any]]:
        loads.append(1)
        return [{"role": "user", "content": "x" * 40}]

    assert cache.tokens((1, ""), messages) == 3 + 4 + 10
    assert cache.tokens((1, ""), messages) == 17
    assert len(loads) == 1 and cache.estimates == 1
    cache.tokens((1, "a system prompt"), messages)  # another system prompt
    cache.tokens((2, ""), messages)  # another conversation
    assert len(loads) == 3
    cache.forget()  # the conversation changed
    cache.tokens((2, ""), messages)
    assert len(loads) == cache.estimates == 4


# --- in the chat ------------------------------------------------------------------------------------------------------


def chat(app: HermesChatApp) -> ChatScreen:
    return app.chat_screen


def preview(app: HermesChatApp) -> Static:
    return chat(app).query_one("#usage-next", Static)


def shown(app: HermesChatApp) -> str | None:
    """The preview as the user sees it; ``None`` when hidden."""
    widget = preview(app)
    return str(widget.content) if widget.display else None


async def connected(pilot: Pilot[None]) -> TextArea:
    app: HermesChatApp = pilot.app  # type: ignore[assignment]
    await wait_for(pilot, lambda: chat(app).backend is not None and chat(app).models)
    prompt = chat(app).query_one("#prompt", TextArea)
    prompt.focus()
    return prompt


async def shows(pilot: Pilot[None], text: str | None) -> None:
    """Wait until the preview reads ``text`` (``None``: hidden)."""
    app: HermesChatApp = pilot.app  # type: ignore[assignment]
    try:
        await wait_for(pilot, lambda: shown(app) == text, within=3)
    except AssertionError:
        raise AssertionError(f"the preview shows {shown(app)!r}, not {text!r}") from None


@pytest.mark.slow
async def test_typing_shows_and_updates_the_preview(make_app: AppFactory) -> None:
    app = make_app(FakeBackend())
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        assert shown(app) is None  # nothing typed: nothing shown
        await pilot.press(*"hi")
        await shows(pilot, expected_text(3 + draft_tokens("hi")))
        await pilot.press(*" there, how are you today?")
        await shows(pilot, expected_text(3 + draft_tokens("hi there, how are you today?")))
        assert not preview(app).has_class("-over")
        assert "estimated" in str(preview(app).tooltip).lower()
        # the line under the prompt, after the state
        usage = chat(app).query_one("#usage")
        assert preview(app).parent is usage and preview(app).region.y > chat(app).query_one("#prompt").region.y
        while chat(app).query_one("#prompt", TextArea).text:
            await pilot.press("backspace")
        await shows(pilot, None)  # emptied: gone


async def test_typing_is_debounced_and_does_not_estimate_the_history_again(make_app: AppFactory) -> None:
    fake = FakeBackend()
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        prompt = await connected(pilot)
        prompt.text = "first question"
        await pilot.press("enter")
        await wait_for(pilot, lambda: fake.calls and chat(app).reply is None)
        await pilot.press("a")
        await shows(pilot, expected_text(3 + draft_tokens("first question") + draft_tokens(FAKE_ANSWER)
                                         + draft_tokens("a")))
        estimates = chat(app).history_tokens.estimates
        await pilot.press(*"bcdefgh")
        await pilot.pause(DEBOUNCE_S * 2)
        assert shown(app) == expected_text(3 + draft_tokens("first question") + draft_tokens(FAKE_ANSWER)
                                           + draft_tokens("abcdefgh"))
        assert chat(app).history_tokens.estimates == estimates  # only the draft was estimated again


async def test_a_longer_conversation_shows_a_costlier_next_turn(make_app: AppFactory) -> None:
    fake = FakeBackend()
    app = make_app(fake)
    draft = "Tell me more about that, with examples."
    async with app.run_test(size=SIZE) as pilot:
        prompt = await connected(pilot)
        prompt.text = draft
        fresh = 3 + draft_tokens(draft)
        await shows(pilot, expected_text(fresh))
        prompt.text = "What is a monad?"
        await pilot.press("enter")
        await wait_for(pilot, lambda: fake.calls and chat(app).reply is None)
        prompt.text = draft
        one_turn = fresh + draft_tokens("What is a monad?") + draft_tokens(FAKE_ANSWER)
        await shows(pilot, expected_text(one_turn))
        prompt.text = ""
        prompt.text = "And a functor?"
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(fake.calls) == 2 and chat(app).reply is None)
        prompt.text = draft
        await shows(pilot, expected_text(one_turn + draft_tokens("And a functor?") + draft_tokens(FAKE_ANSWER)))
        # exactly what the next send carries
        prompt.text = draft
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(fake.calls) == 3)
        assert estimate_prompt_tokens(fake.calls[2].messages) == one_turn + draft_tokens("And a functor?") + \
            draft_tokens(FAKE_ANSWER)


async def test_the_preview_follows_the_model_max_tokens_and_system_prompt(make_app: AppFactory,
                                                                          store: Store) -> None:
    system = "You are a careful assistant. " * 20
    saved = store.create_conversation("With a system prompt", model=BIG.alias, system_prompt=system)
    store.add_message(saved.id, "user", "Hello")
    answer = store.add_message(saved.id, "assistant", "", status="streaming")
    store.finish_message(answer.id, content="Hi! How can I help?", reasoning="Greeting. " * 100, status="complete",
                         prompt_tokens=5, completion_tokens=300, reasoning_tokens=295, cost_usd=Decimal("0.001"),
                         estimated=False, finish_reason="stop", error=None, error_kind=None)
    app = make_app(FakeBackend())
    draft = "x" * 4000
    history = 3 + draft_tokens(system) + draft_tokens("Hello") + draft_tokens("Hi! How can I help?")  # no reasoning
    async with app.run_test(size=SIZE) as pilot:
        prompt = await connected(pilot)
        await chat(app).open_conversation(saved.id)
        prompt.text = draft
        tokens = history + draft_tokens(draft)
        await shows(pilot, expected_text(tokens))
        chat(app).set_model(SMALL.alias)
        await shows(pilot, expected_text(tokens, SMALL))
        chat(app).set_chat_settings(ChatParams(max_tokens=512), reasoning=False)
        await shows(pilot, expected_text(tokens, SMALL, max_tokens=512))


async def test_hidden_while_a_reply_streams_and_back_after(make_app: AppFactory) -> None:
    fake = FakeBackend(scripts=(Script(content=("Partial", " answer", " streams."), hold_after=1),))
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        prompt = await connected(pilot)
        prompt.text = "Explain TCP slow start"
        await shows(pilot, expected_text(3 + draft_tokens("Explain TCP slow start")))
        await pilot.press("enter")
        await wait_for(pilot, lambda: fake.held.is_set())
        assert shown(app) is None  # the live numbers take its place
        assert "in " in str(chat(app).query_one("#usage-tokens", Static).content)
        await pilot.press(*"and congestion")  # typed while the reply streams: stays in the prompt
        await pilot.pause(DEBOUNCE_S * 2)
        assert shown(app) is None
        assert chat(app).reply is not None
        fake.release()
        await wait_for(pilot, lambda: chat(app).reply is None)
        history = 3 + draft_tokens("Explain TCP slow start") + draft_tokens("Partial answer streams.")
        await shows(pilot, expected_text(history + draft_tokens("and congestion")))


async def test_over_the_context_window_warns(make_app: AppFactory) -> None:
    tiny = ModelInfo("tiny", 200, Decimal("1.0"), Decimal("3.0"), simulated=False, upstream="fake-upstream")
    app = make_app(FakeBackend(model_list=(tiny,)), settings=ChatSettings(model="tiny"))
    async with app.run_test(size=SIZE) as pilot:
        prompt = await connected(pilot)
        prompt.text = "y" * 400
        await shows(pilot, expected_text(107, tiny))  # 107 in, up to 93 out
        assert not preview(app).has_class("-over")
        prompt.text = "y" * 1000
        await shows(pilot, "⚠ next ~257 in · over the 200 context")
        assert preview(app).has_class("-over")
        assert "does not fit" in str(preview(app).tooltip)
        prompt.text = "short"
        await shows(pilot, expected_text(9, tiny))
        assert not preview(app).has_class("-over")
