"""The chat driven with Pilot against the scripted fake backend."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from fake_backend import AppFactory, BudgetInfo, FakeBackend, Script, wait_for
from textual import events
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, TextArea

from tui.app import HermesChatApp
from tui.backend import BackendError, ErrorKind, ModelInfo
from tui.screens.chat import ChatScreen
from tui.screens.dialogs import ChoiceScreen, ConfirmScreen, TextPromptScreen
from tui.screens.help import HelpScreen
from tui.screens.model_picker import ModelPickerScreen
from tui.settings import ChatSettings
from tui.store import Store
from tui.widgets.conversation import WINDOW, ConversationView, EarlierMessages
from tui.widgets.key_footer import KeyFooter
from tui.widgets.messages import AssistantMessage, NoteMessage, ReasoningBlock, UserMessage
from tui.widgets.status import ReasoningSwitch

SIZE = (120, 40)


def chat(app: HermesChatApp) -> ChatScreen:
    return app.chat_screen


def connected(app: HermesChatApp) -> bool:
    return chat(app).backend is not None and bool(chat(app).models)


def idle(app: HermesChatApp) -> bool:
    return chat(app).reply is None


async def send(pilot: Pilot[None], text: str) -> None:
    """Put ``text`` in the prompt and press Enter (typing it key by key is tested once, in test_multiline_input)."""
    await wait_for(pilot, lambda: connected(pilot.app))  # type: ignore[arg-type]
    prompt = chat(pilot.app).query_one("#prompt", TextArea)  # type: ignore[arg-type]
    prompt.text = text
    prompt.focus()
    await pilot.press("enter")


def notes(app: HermesChatApp, cls: str = "error-note") -> list[str]:
    return [str(note.content) for note in chat(app).query(f"NoteMessage.{cls}").results(NoteMessage)]


def notifications(app: HermesChatApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_send_shows_the_streamed_answer_and_saves_it(make_app: AppFactory, store: Store) -> None:
    fake = FakeBackend()
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello there")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        answer = chat(app).query_one(AssistantMessage)
        assert answer.content == "Hello from the fake backend."
        assert answer.answer.source == "Hello from the fake backend."
        assert [m.text for m in chat(app).query(UserMessage).results(UserMessage)] == ["hello there"]
        assert fake.calls[0].messages == [{"role": "user", "content": "hello there"}]
        assert chat(app).query_one("#prompt", TextArea).text == ""
        (summary,) = store.conversations()
        assert summary.title == "hello there"
        user, assistant = store.messages(summary.id)
        assert (user.role, user.content) == ("user", "hello there")
        assert (assistant.status, assistant.content, assistant.cost_usd) == ("complete", answer.content,
                                                                          Decimal("0.0042"))
        assert assistant.prompt_tokens == 12 and not assistant.estimated
        assert "$0.0042" in str(chat(app).query_one("#usage-reply").content)
        assert "$0.0042" in str(chat(app).query_one("#usage-chat").content)


async def test_reasoning_block_open_while_thinking_then_collapsed_with_token_count(make_app: AppFactory) -> None:
    fake = FakeBackend(scripts=(Script(reasoning=("Let me think", " about greetings."), hold_after=2,
                                       reasoning_tokens=37),))
    app = make_app(fake, settings=ChatSettings(reasoning=True))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hi")
        await wait_for(pilot, lambda: fake.held.is_set())
        await pilot.pause(0.05)
        view = chat(app).query_one(AssistantMessage)
        block = view.query_one(ReasoningBlock)
        assert block.display and not block.collapsed
        assert block.title.startswith("Thinking…") and "tokens" in block.title
        assert view.reasoning == "Let me think about greetings."
        assert "thinking" in str(chat(app).query_one("#usage-state").content)
        fake.release()
        await wait_for(pilot, lambda: idle(app))
        assert block.collapsed
        assert block.title == "Reasoning · 37 tokens"
        assert view.content == "Hello from the fake backend."
        assert "37 reasoning" in str(chat(app).query_one("#usage-tokens").content)


async def test_toggle_reasoning_with_the_key_and_the_switch(make_app: AppFactory) -> None:
    fake = FakeBackend(scripts=(Script(reasoning=("Thinking.",)),))
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        switch = chat(app).query_one(ReasoningSwitch)
        assert not switch.on and "OFF" in str(switch.content)
        await pilot.press("ctrl+r")
        assert switch.on and "ON" in str(switch.content)
        await send(pilot, "one")
        await wait_for(pilot, lambda: len(fake.calls) == 1 and idle(app))
        assert fake.calls[0].reasoning is True
        assert chat(app).query(AssistantMessage).last().reasoning == "Thinking."

        await pilot.click("#reasoning-toggle")
        assert not switch.on
        await send(pilot, "two")
        await wait_for(pilot, lambda: len(fake.calls) == 2 and idle(app))
        assert fake.calls[1].reasoning is False
        last = chat(app).query(AssistantMessage).last()
        assert last.reasoning == "" and not last.query_one(ReasoningBlock).display

        await pilot.click("#reasoning-toggle")
        assert switch.on


@pytest.mark.parametrize("key", ["escape", "ctrl+c"])
async def test_stop_mid_stream_keeps_the_partial_answer_and_saves_it(make_app: AppFactory, store: Store,
                                                                      key: str) -> None:
    fake = FakeBackend(scripts=(Script(content=("Partial", " answer", " never", " sent"), hold_after=2),))
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "tell me a story")
        await wait_for(pilot, lambda: fake.held.is_set())
        await pilot.pause(0.05)
        assert chat(app).check_action("stop", ()) is True
        await pilot.press(key)
        await wait_for(pilot, lambda: idle(app))
        view = chat(app).query_one(AssistantMessage)
        assert view.content == "Partial answer"
        assert "stopped" in str(view.query_one(".message-meta").content)
        assert fake.calls[0].outcome == "stopped" and fake.calls[0].sent_text == "Partial answer"
        (summary,) = store.conversations()
        user, assistant = store.messages(summary.id)
        assert user.content == "tell me a story"
        assert (assistant.status, assistant.content) == ("stopped", "Partial answer")
        assert assistant.estimated and assistant.cost_usd is not None and assistant.cost_usd > 0
        assert chat(app).check_action("stop", ()) is False
        # the app is still usable, and the stopped answer is part of the history
        fake.scripts = (Script(),)
        await send(pilot, "go on")
        await wait_for(pilot, lambda: len(fake.calls) == 2 and idle(app))
        assert fake.calls[1].messages[-2:] == [{"role": "assistant", "content": "Partial answer"},
                                               {"role": "user", "content": "go on"}]


async def test_stop_while_thinking(make_app: AppFactory, store: Store) -> None:
    fake = FakeBackend(scripts=(Script(reasoning=("Hmm", " let me see"), hold_after=1),))
    app = make_app(fake, settings=ChatSettings(reasoning=True))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "think hard")
        await wait_for(pilot, lambda: fake.held.is_set())
        await pilot.pause(0.05)
        await pilot.press("escape")
        await wait_for(pilot, lambda: idle(app))
        (summary,) = store.conversations()
        assistant = store.messages(summary.id)[1]
        assert (assistant.status, assistant.reasoning, assistant.content) == ("stopped", "Hmm", "")


async def test_budget_refusal_is_a_clear_message_and_keeps_the_user_message(make_app: AppFactory,
                                                                             store: Store) -> None:
    refusal = "team 'default' is over its daily budget ($5.00 of $5.00 spent)"
    fake = FakeBackend(scripts=(Script(fail="budget", fail_message=refusal),))
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "expensive question")
        await wait_for(pilot, lambda: fake.calls and idle(app) and notes(app))
        (note,) = notes(app)
        assert note.startswith(f"Budget refused: {refusal}")
        assert refusal in notifications(app)
        assert chat(app).query_one("NoteMessage.error-note").has_class("-budget")
        (summary,) = store.conversations()
        user, assistant = store.messages(summary.id)
        assert user.content == "expensive question"
        assert (assistant.status, assistant.error_kind, assistant.error) == ("error", "budget", refusal)
        assert assistant.cost_usd is None
        assert chat(app).query_one("#prompt", TextArea).text == ""


@pytest.mark.parametrize("kind", ["auth", "upstream", "network", "invalid", "other"])
@pytest.mark.parametrize("fail_after", [0, 2])
async def test_errors_of_every_kind_are_shown_without_a_crash(make_app: AppFactory, store: Store, kind: ErrorKind,
                                                              fail_after: int) -> None:
    fake = FakeBackend(scripts=(Script(fail=kind, fail_message=f"{kind} went wrong", fail_after=fail_after),
                                Script()))
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "question")
        await wait_for(pilot, lambda: fake.calls and idle(app) and notes(app))
        (note,) = notes(app)
        assert f"{kind} went wrong" in note
        assert f"{kind} went wrong" in notifications(app)
        view = chat(app).query_one(AssistantMessage)
        assert view.content == ("Hello from" if fail_after else "")
        assert store.messages(store.conversations()[0].id)[1].status == "error"
        await send(pilot, "again")
        await wait_for(pilot, lambda: len(fake.calls) == 2 and idle(app))
        assert chat(app).query(AssistantMessage).last().content == "Hello from the fake backend."
        assert app.is_running


async def test_an_unexpected_exception_is_shown_not_raised(make_app: AppFactory) -> None:
    fake = FakeBackend(scripts=(Script(fail="other", fail_message="boom", fail_after=1, crash=True),))
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "question")
        await wait_for(pilot, lambda: fake.calls and idle(app) and notes(app))
        assert "RuntimeError: boom" in notes(app)[0]
        assert app.is_running


async def test_a_backend_that_cannot_start_leaves_the_saved_chats_usable(store: Store) -> None:
    conversation = store.create_conversation("Saved before")
    store.add_message(conversation.id, "user", "old question")

    async def factory() -> FakeBackend:
        raise BackendError("cannot reach http://127.0.0.1:9: connection refused", "network")

    app = HermesChatApp(store=store, backend_factory=factory)  # type: ignore[arg-type]
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: chat(app).connection_error is not None)
        assert "connection refused" in notes(app)[0]
        assert "not connected" in str(chat(app).query_one("#backend-label").content)
        await pilot.press(*"hello", "enter")
        await pilot.pause()
        assert chat(app).query_one("#prompt", TextArea).text == "hello"  # kept for when it works
        await chat(app).open_conversation(conversation.id)
        await pilot.pause()
        assert [m.text for m in chat(app).query(UserMessage).results(UserMessage)] == ["old question"]


async def test_reopen_a_saved_conversation(make_app: AppFactory, store: Store) -> None:
    old = store.create_conversation("Rust lifetimes", model="hermes-4-70b", system_prompt="Be brief.")
    store.add_message(old.id, "user", "What is a lifetime?")
    row = store.add_message(old.id, "assistant", "", model="hermes-4-70b", status="streaming")
    store.finish_message(row.id, content="A scope for which a **reference** is valid.", reasoning="Recall Rust.",
                         status="complete", prompt_tokens=20, completion_tokens=15, reasoning_tokens=4,
                         cost_usd=Decimal("0.0001"))
    store.create_conversation("Another one")
    fake = FakeBackend()
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: connected(app))
        conversations = chat(app).query_one("#conversation-list", OptionList)
        assert conversations.option_count == 2
        await pilot.press("ctrl+o")
        assert conversations.has_focus
        await pilot.press("down", "enter")  # the list is most recent first: "Rust lifetimes" is second
        await wait_for(pilot, lambda: chat(app).conversation is not None)
        assert chat(app).conversation.title == "Rust lifetimes"
        assert chat(app).model_alias == "hermes-4-70b"
        view = chat(app).query_one(AssistantMessage)
        assert view.content == "A scope for which a **reference** is valid."
        block = view.query_one(ReasoningBlock)
        assert block.collapsed and block.title == "Reasoning · 4 tokens"
        assert "Be brief." in notes(app, "system-note")[0]
        assert "$0.0001" in str(chat(app).query_one("#usage-chat").content)
        # continuing it sends the system prompt first and the earlier answer without its reasoning
        await send(pilot, "And a borrow?")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        assert fake.calls[0].model == "hermes-4-70b"
        assert fake.calls[0].messages == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is a lifetime?"},
            {"role": "assistant", "content": "A scope for which a **reference** is valid."},
            {"role": "user", "content": "And a borrow?"},
        ]
        assert len(store.messages(old.id)) == 4


async def test_earlier_reasoning_is_not_sent_back(make_app: AppFactory) -> None:
    fake = FakeBackend(scripts=(Script(reasoning=("SECRET-THOUGHT",), content=("First answer.",)),))
    app = make_app(fake, settings=ChatSettings(reasoning=True))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first")
        await wait_for(pilot, lambda: len(fake.calls) == 1 and idle(app))
        await send(pilot, "second")
        await wait_for(pilot, lambda: len(fake.calls) == 2 and idle(app))
        sent = fake.calls[1].messages
        assert sent == [{"role": "user", "content": "first"}, {"role": "assistant", "content": "First answer."},
                        {"role": "user", "content": "second"}]
        assert "SECRET-THOUGHT" not in repr(sent)


async def test_rename_search_and_delete_conversations(make_app: AppFactory, store: Store) -> None:
    for title in ("Pasta recipes", "Kubernetes networking", "Pasta shapes"):
        store.create_conversation(title)
    app = make_app(FakeBackend())
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "a brand new chat")
        await wait_for(pilot, lambda: idle(app) and chat(app).conversation is not None)
        current = chat(app).conversation
        assert current is not None

        await pilot.press("f2")
        assert isinstance(app.screen, TextPromptScreen)
        field = app.screen.query_one("#dialog-input", Input)
        field.value = "Renamed chat"
        await pilot.press("enter")
        await pilot.pause()
        assert store.conversation(current.id).title == "Renamed chat"
        assert str(chat(app).query_one("#chat-title").content) == "Renamed chat"

        conversations = chat(app).query_one("#conversation-list", OptionList)
        assert conversations.option_count == 4
        await pilot.press("ctrl+f")
        await pilot.press(*"pasta")
        await pilot.pause()
        assert conversations.option_count == 2
        titles = {str(conversations.get_option_at_index(i).prompt).split("\n")[0] for i in range(2)}
        assert titles == {"Pasta recipes", "Pasta shapes"}
        await pilot.press("enter")  # from the search box to the list
        assert conversations.has_focus
        doomed = conversations.highlighted_id
        assert doomed is not None

        await pilot.press("delete")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert len(store.conversations()) == 4
        await pilot.press("delete")
        await pilot.press("y")
        await pilot.pause()
        assert len(store.conversations()) == 3
        assert conversations.option_count == 1
        assert doomed not in {c.id for c in store.conversations()}

        chat(app).action_delete()  # the current conversation, from the palette
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: chat(app).conversation is None)
        assert current.id not in {c.id for c in store.conversations()}
        assert str(chat(app).query_one("#chat-title").content) == "New chat"


async def test_search_matches_message_text(store: Store) -> None:
    a = store.create_conversation("Alpha")
    store.add_message(a.id, "user", "tell me about zebras")
    store.create_conversation("Beta")
    assert [c.title for c in store.conversations("ZEBRA")] == ["Alpha"]
    assert [c.title for c in store.conversations("100%")] == []


async def test_export_markdown_to_a_file(make_app: AppFactory, tmp_path: Path) -> None:
    fake = FakeBackend(scripts=(Script(reasoning=("Consider it.",), content=("```python\nprint(42)\n```\n",)),))
    app = make_app(fake, settings=ChatSettings(reasoning=True))
    target = tmp_path / "out" / "chat.md"
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "show code")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, TextPromptScreen)
        field = app.screen.query_one("#dialog-input", Input)
        assert field.value.endswith("show-code.md")
        field.value = str(target)
        await pilot.press("enter")
        await pilot.pause()
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# show code\n")
    assert "## You\n\nshow code" in text
    assert "<details><summary>Reasoning (3 tokens)</summary>\n\nConsider it." in text
    assert "```python\nprint(42)\n```" in text
    assert "$0.0042" in text


async def test_system_prompt_per_conversation(make_app: AppFactory, store: Store) -> None:
    fake = FakeBackend()
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: connected(app))
        await pilot.press("f4")
        assert isinstance(app.screen, TextPromptScreen)
        app.screen.query_one("#dialog-input", TextArea).text = "You are a pirate."
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "You are a pirate." in notes(app, "system-note")[0]
        await send(pilot, "ahoy")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        assert fake.calls[0].messages[0] == {"role": "system", "content": "You are a pirate."}
        assert store.conversation(chat(app).conversation.id).system_prompt == "You are a pirate."  # type: ignore[union-attr]
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert notes(app, "system-note") == []
        await send(pilot, "hello")
        await wait_for(pilot, lambda: len(fake.calls) == 2 and idle(app))
        assert fake.calls[1].messages == [{"role": "user", "content": "hello"}]


async def test_model_picker(make_app: AppFactory) -> None:
    fake = FakeBackend()
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: connected(app))
        await pilot.click("#model-button")
        assert isinstance(app.screen, ModelPickerScreen)
        await pilot.press("down", "enter")
        await pilot.pause()
        assert chat(app).model_alias == "hermes-4-70b"
        await send(pilot, "hi")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        assert fake.calls[0].model == "hermes-4-70b"
        await pilot.press("f3")
        assert isinstance(app.screen, ModelPickerScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, ChatScreen)


async def test_budget_warning_colour_and_live_numbers(make_app: AppFactory) -> None:
    warning = BudgetInfo(Decimal("0.42"), "team default is past 80% of its daily budget", "default")
    fake = FakeBackend(budget_info=warning, scripts=(Script(hold_after=1),))
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: connected(app))
        await pilot.pause()
        budget = chat(app).query_one("#usage-budget")
        assert budget.has_class("-warning")
        assert "$0.42 left" in str(budget.content)
        await send(pilot, "hi")
        await wait_for(pilot, lambda: fake.held.is_set())
        await pilot.pause(0.05)
        assert "answering" in str(chat(app).query_one("#usage-state").content)
        assert "out ~2" in str(chat(app).query_one("#usage-tokens").content)
        assert "tok/s" in str(chat(app).query_one("#usage-rate").content)
        assert "ctx 0.0%" in str(chat(app).query_one("#usage-context").content)
        fake.release()
        await wait_for(pilot, lambda: idle(app))
        fake.budget_info = BudgetInfo(Decimal("0"), "over budget", "default")
        await chat(app)._refresh_budget()
        chat(app).refresh_usage()
        assert budget.has_class("-exhausted")


async def test_copy_a_message_and_a_code_block(make_app: AppFactory) -> None:
    fake = FakeBackend(scripts=(Script(content=("Here:\n\n```python\nprint('hi')\n```\n",)),))
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "code please")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        await pilot.pause()
        header = chat(app).query_one("AssistantMessage MessageHeader")
        await pilot.click(header, offset=(header.content_region.width - 3, 0))  # "⧉ copy", right of the header
        assert app.clipboard == "Here:\n\n```python\nprint('hi')\n```\n"
        question = chat(app).query_one(UserMessage)
        await pilot.click(question, offset=(question.content_region.width - 2, 0))
        assert app.clipboard == "code please"
        app.copy_to_clipboard("")
        await pilot.click(question, offset=(3, 0))  # "You" is not the link
        assert app.clipboard == ""
        await pilot.click("AssistantMessage MarkdownFence")
        assert app.clipboard == "print('hi')"
        app.copy_to_clipboard("")
        await pilot.press("f6")
        assert app.clipboard == "print('hi')"
        await pilot.press("f5")
        assert app.clipboard.startswith("Here:")


async def test_reasoning_display_modes(make_app: AppFactory, store: Store) -> None:
    fake = FakeBackend(scripts=(Script(reasoning=("Thought.",)),))
    app = make_app(fake, settings=ChatSettings(reasoning=True, show_reasoning="always"))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hi")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        block = chat(app).query_one(ReasoningBlock)
        assert block.display and not block.collapsed  # always: never collapsed
        chat(app).action_reasoning_display("never")
        assert not block.display
        assert store.setting("show_reasoning") == "never"
        chat(app).action_reasoning_display("auto")
        assert block.display and block.collapsed
    assert HermesChatApp(store=store).settings.show_reasoning == "auto"


async def test_multiline_input(make_app: AppFactory) -> None:
    fake = FakeBackend()
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: connected(app))
        await pilot.press("a", "ctrl+j", "b", "shift+enter", "c")
        assert chat(app).query_one("#prompt", TextArea).text == "a\nb\nc"
        await pilot.press("enter")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        assert fake.calls[0].messages[-1]["content"] == "a\nb\nc"


async def test_configured_newline_key(make_app: AppFactory) -> None:
    fake = FakeBackend()
    app = make_app(fake, settings=ChatSettings(newline_key="enter"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: connected(app))
        await pilot.press("a", "enter", "b")
        assert chat(app).query_one("#prompt", TextArea).text == "a\nb"
        await pilot.press("ctrl+j")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        assert fake.calls[0].messages[-1]["content"] == "a\nb"


async def test_help_screen_and_command_palette_entries(make_app: AppFactory) -> None:
    app = make_app(FakeBackend())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, ChatScreen)
        titles = {command.title for command in app.get_system_commands(app.screen)}
        for wanted in ("New chat", "Conversations", "Search conversations", "Rename conversation",
                       "Delete conversation", "System prompt", "Model and upstream", "Export to markdown",
                       "Copy last answer", "Copy last code block", "Help", "Reasoning: turn ON",
                       "Reasoning display: always", "Reasoning display: never", "Reasoning display: auto",
                       "Regenerate the last answer", "Regenerate with reasoning ON", "Edit an earlier message"):
            assert wanted in titles


async def test_the_footer_shows_the_keys_of_the_moment_and_a_click_presses_one(make_app: AppFactory) -> None:
    fake = FakeBackend(scripts=(Script(hold_after=1),))
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: connected(app))
        footer = chat(app).query_one(KeyFooter)
        assert [(h.shown_as, h.description) for h in footer.hints.left][:3] == [
            ("^r", "Reasoning"), ("^n", "New"), ("^o", "Chats")]
        assert "Stop" not in [h.description for h in footer.hints.left]
        assert footer.hints.palette is not None and footer.hints.palette.shown_as == "^p"
        switch = chat(app).query_one(ReasoningSwitch)
        await pilot.click(KeyFooter, offset=(3, 0))  # on "^r Reasoning"
        assert switch.on
        await send(pilot, "hi")
        await wait_for(pilot, lambda: fake.held.is_set())
        await pilot.pause()
        assert footer.hints.left[0].description == "Stop"  # the keys follow what can be done now
        await pilot.click(KeyFooter, offset=(2, 0))
        await wait_for(pilot, lambda: idle(app))
        assert fake.calls[0].outcome == "stopped"
        await pilot.pause()
        assert "Stop" not in [h.description for h in footer.hints.left]
        await pilot.click(KeyFooter, offset=(SIZE[0] - 3, 0))  # the palette's key, flush right
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))


async def test_sending_while_a_reply_streams_is_refused_politely(make_app: AppFactory) -> None:
    fake = FakeBackend(scripts=(Script(hold_after=1),))
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first")
        await wait_for(pilot, lambda: fake.held.is_set())
        await pilot.press(*"second", "enter")
        await pilot.pause()
        assert len(fake.calls) == 1
        # the send key adds a line (as the lines of a paste would) and nothing is lost
        assert chat(app).query_one("#prompt", TextArea).text == "second\n"
        assert any("still streaming" in n for n in notifications(app))
        fake.release()
        await wait_for(pilot, lambda: idle(app))
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(fake.calls) == 2 and idle(app))
        assert fake.calls[1].messages[-1] == {"role": "user", "content": "second"}
        assert chat(app).query_one("#prompt", TextArea).text == ""


def burst(app: HermesChatApp, keys: str) -> None:
    """Keys as a terminal delivers them in one read (fast typing, a paste without bracketed paste): all queued
    before the app handles any of them. A newline is the Enter key."""
    for char in keys:
        app.post_message(events.Key("enter", "\r") if char == "\n" else events.Key(char, char))


async def test_text_typed_while_a_reply_starts_stays_in_the_prompt(make_app: AppFactory, store: Store) -> None:
    fake = FakeBackend()
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: connected(app))
        prompt = chat(app).query_one("#prompt", TextArea)
        prompt.text = "first question"
        prompt.move_cursor(prompt.document.end)
        burst(app, "\nand a second")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        assert prompt.text == "and a second"
        assert fake.calls[0].messages == [{"role": "user", "content": "first question"}]
        (summary,) = store.conversations()
        assert store.messages(summary.id)[0].content == "first question"


async def test_a_multiline_paste_without_bracketed_paste_keeps_its_lines(make_app: AppFactory) -> None:
    fake = FakeBackend(scripts=(Script(hold_after=0),))
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: connected(app))
        chat(app).query_one("#prompt", TextArea).focus()
        burst(app, "line one\nline two\nline three")
        await wait_for(pilot, lambda: fake.held.is_set())
        await pilot.pause()
        # the first line went (Enter sends); the others stay, line breaks and all
        assert fake.calls[0].messages[-1]["content"] == "line one"
        assert chat(app).query_one("#prompt", TextArea).text == "line two\nline three"
        fake.release()
        await wait_for(pilot, lambda: idle(app))
        assert len(fake.calls) == 1


async def test_simulated_backend_is_clearly_labelled(make_app: AppFactory) -> None:
    fake = FakeBackend(simulated=True, label="in-process · demo upstream (SIMULATED)")
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: connected(app))
        assert chat(app).query_one("#simulated-badge").display
        assert "demo upstream" in str(chat(app).query_one("#backend-label").content)
        assert any("simulated" in n.lower() for n in notifications(app))
        await send(pilot, "hi")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        assert "SIMULATED" in chat(app).query_one(AssistantMessage).label


async def test_streaming_stays_at_the_bottom_unless_the_user_scrolls_up(make_app: AppFactory) -> None:
    lines = tuple(f"Line {i} of a long answer.\n\n" for i in range(60))
    fake = FakeBackend(scripts=(Script(content=lines, hold_after=30), Script(content=lines)))
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        container = chat(app).query_one("#conversation")
        await send(pilot, "long please")
        await wait_for(pilot, lambda: fake.held.is_set())
        # followed the answer (waited for, not slept on: a loaded machine draws later)
        await wait_for(pilot, lambda: 0 < container.max_scroll_y == container.scroll_y)
        container.scroll_home(animate=False)  # the user scrolls up to read
        await pilot.pause(0.05)
        fake.release()
        await wait_for(pilot, lambda: idle(app))
        await pilot.pause(0.05)
        assert container.scroll_y < container.max_scroll_y  # left where the user put it
        await send(pilot, "again")  # sending takes the view back to the bottom
        await wait_for(pilot, lambda: len(fake.calls) == 2 and idle(app))
        await wait_for(pilot, lambda: container.scroll_y == container.max_scroll_y)


async def test_models_that_cannot_be_listed_are_retried_when_sending(make_app: AppFactory) -> None:
    class Flaky(FakeBackend):
        failures = 1

        async def models(self) -> list[ModelInfo]:
            if self.failures:
                self.failures -= 1
                raise BackendError("cannot reach http://127.0.0.1:9: Connection error.", "network")
            return await super().models()

    fake = Flaky()
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: chat(app).models_error is not None)
        assert any("Connection error" in n for n in notifications(app))
        assert "not connected" in str(chat(app).query_one("#usage-state").content)
        prompt = chat(app).query_one("#prompt", TextArea)
        prompt.text = "hello"
        await pilot.press("enter")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        assert fake.calls[0].model == "hermes-4-405b"
        assert chat(app).models_error is None


async def test_escape_leaves_the_conversation_list_and_ctrl_b_hides_it(make_app: AppFactory) -> None:
    app = make_app(FakeBackend())
    async with app.run_test(size=SIZE) as pilot:
        prompt = chat(app).query_one("#prompt", TextArea)
        await pilot.press("ctrl+f")
        assert chat(app).query_one("#search", Input).has_focus
        await pilot.press("escape")
        assert prompt.has_focus
        await pilot.press("ctrl+b")
        assert not chat(app).query_one("#sidebar").display
        await pilot.press("ctrl+o")
        assert chat(app).query_one("#sidebar").display


async def test_a_narrow_terminal_starts_without_the_list(make_app: AppFactory) -> None:
    app = make_app(FakeBackend())
    async with app.run_test(size=(80, 30)) as pilot:
        await pilot.pause()
        assert not chat(app).query_one("#sidebar").display


# --- regenerate, retry, edit (issue 15) -----------------------------------------------------------------------------


async def test_regenerate_replaces_the_last_answer_in_the_store(make_app: AppFactory, store: Store) -> None:
    fake = FakeBackend(scripts=(Script(), Script(content=("A second", " answer."), cost_usd=Decimal("0.0010"))))
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "tell me something")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        await pilot.press("ctrl+r", "ctrl+g")  # regenerate with reasoning turned on
        await wait_for(pilot, lambda: len(fake.calls) == 2 and idle(app))
        assert fake.calls[1].messages == [{"role": "user", "content": "tell me something"}]
        assert fake.calls[1].reasoning
        (summary,) = store.conversations()
        user, answer = store.messages(summary.id)
        assert (user.content, answer.content, answer.reasoning_on) == ("tell me something", "A second answer.", True)
        # on screen: one question, one answer (the new one)
        assert [v.content for v in chat(app).query(AssistantMessage).results(AssistantMessage)] == ["A second answer."]
        assert len(chat(app).query(UserMessage)) == 1
        # the replaced answer was paid for: it stays in the chat's cost
        assert store.conversation_cost(summary.id) == Decimal("0.0052") == summary.cost_usd
        assert "$0.0052" in str(chat(app).query_one("#usage-chat").content)


async def test_retry_after_an_error_with_one_key_and_the_failed_turn_is_never_resent(make_app: AppFactory,
                                                                                      store: Store) -> None:
    fake = FakeBackend(scripts=(Script(fail="upstream", fail_message="host down", fail_after=2), Script(),
                                Script(content=("Third.",))))
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "question")
        await wait_for(pilot, lambda: fake.calls and idle(app) and notes(app))
        assert chat(app).query_one(AssistantMessage).content == "Hello from"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: len(fake.calls) == 2 and idle(app))
        assert fake.calls[1].messages == [{"role": "user", "content": "question"}]  # not the partial failed answer
        assert not notes(app)  # the failed answer and its error note are gone
        (summary,) = store.conversations()
        assert [(m.role, m.status, m.content) for m in store.messages(summary.id)] == [
            ("user", "complete", "question"), ("assistant", "complete", "Hello from the fake backend.")]


async def test_a_failed_turn_is_not_sent_again_as_history(make_app: AppFactory) -> None:
    fake = FakeBackend(scripts=(Script(fail="network", fail_after=1), Script()))
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "lost question")
        await wait_for(pilot, lambda: fake.calls and idle(app) and notes(app))
        await send(pilot, "new question")
        await wait_for(pilot, lambda: len(fake.calls) == 2 and idle(app))
        assert fake.calls[1].messages == [{"role": "user", "content": "new question"}]


@pytest.mark.parametrize("keep", [True, False])
async def test_edit_an_earlier_message_and_continue_from_there(make_app: AppFactory, store: Store,
                                                               keep: bool) -> None:
    fake = FakeBackend(scripts=(Script(content=("One.",)), Script(content=("Two.",)), Script(content=("Edited.",))))
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first")
        await wait_for(pilot, lambda: len(fake.calls) == 1 and idle(app))
        await send(pilot, "second")
        await wait_for(pilot, lambda: len(fake.calls) == 2 and idle(app))
        original = chat(app).conversation
        assert original is not None
        await pilot.press("f8")
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press("down", "enter")  # newest first: the first message
        assert isinstance(app.screen, TextPromptScreen)
        assert app.screen.query_one(TextArea).text == "first"
        app.screen.query_one(TextArea).text = "first, rephrased"
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press(*([] if keep else ["down"]), "enter")
        await wait_for(pilot, lambda: len(fake.calls) == 3 and idle(app))
        assert fake.calls[2].messages == [{"role": "user", "content": "first, rephrased"}]
        assert [(m.role, m.content) for m in store.messages(original.id)] == [
            ("user", "first, rephrased"), ("assistant", "Edited.")]
        assert [m.text for m in chat(app).query(UserMessage).results(UserMessage)] == ["first, rephrased"]
        titles = [c.title for c in store.conversations()]
        if keep:
            (earlier,) = [c for c in store.conversations() if c.title == "first (earlier branch)"]
            assert [m.content for m in store.messages(earlier.id)] == ["first", "One.", "second", "Two."]
            # each cent counted once: the earlier branch's answers are billed in the copy
            assert earlier.cost_usd == Decimal("0.0084")
            assert store.conversation_cost(original.id) == Decimal("0.0042")
        else:
            assert titles == ["first"]
            # the discarded answers were paid for: their cost stays in the chat's
            assert store.conversation_cost(original.id) == Decimal("0.0126")


async def test_up_and_down_recall_earlier_prompts_as_in_a_shell(make_app: AppFactory, store: Store) -> None:
    old = store.create_conversation("old")
    store.add_message(old.id, "user", "from an earlier chat")
    fake = FakeBackend()
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first prompt")
        await wait_for(pilot, lambda: len(fake.calls) == 1 and idle(app))
        await send(pilot, "second\nprompt")
        await wait_for(pilot, lambda: len(fake.calls) == 2 and idle(app))
        prompt = chat(app).query_one("#prompt", TextArea)
        assert prompt.text == ""
        await pilot.press("up")  # on an empty prompt: the last one
        assert prompt.text == "second\nprompt"
        await pilot.press("up")
        assert prompt.text == "first prompt"
        await pilot.press("up")
        assert prompt.text == "from an earlier chat"
        await pilot.press("up")  # the oldest stays
        assert prompt.text == "from an earlier chat"
        await pilot.press("down", "down")
        assert prompt.text == "second\nprompt"
        await pilot.press("down", "down")  # past the newest: back to what was being typed (nothing)
        assert prompt.text == ""
        # a draft being typed is not replaced: Up moves the cursor in it
        await pilot.press(*"draft", "ctrl+j", *"line")
        await pilot.press("up")
        assert prompt.text == "draft\nline" and prompt.cursor_location[0] == 0
        # a recalled prompt is sent as any other
        prompt.text = ""
        await pilot.press("up", "up", "enter")
        await wait_for(pilot, lambda: len(fake.calls) == 3 and idle(app))
        assert fake.calls[2].messages[-1] == {"role": "user", "content": "first prompt"}


@pytest.mark.slow
async def test_a_long_conversation_opens_at_its_end_and_draws_earlier_messages_on_the_way_up(
        make_app: AppFactory, store: Store) -> None:
    long = store.create_conversation("long")
    turns = 45
    for n in range(turns):
        store.add_message(long.id, "user", f"question {n}")
        answer = store.add_message(long.id, "assistant", "", status="streaming")
        store.finish_message(answer.id, content=f"answer {n}", status="complete", reasoning="")
    app = make_app(FakeBackend())
    async with app.run_test(size=(80, 200)) as pilot:  # tall: the note at the top is on screen, to be clicked
        await chat(app).open_conversation(long.id)
        await pilot.pause()
        view = chat(app).query_one(ConversationView)
        drawn = [m.text for m in view.query(UserMessage).results(UserMessage)]
        assert drawn[-1] == f"question {turns - 1}" and len(drawn) == WINDOW // 2  # whole turns, from the end
        assert view.earlier_count == 2 * (turns - len(drawn))
        note = view.query_one(EarlierMessages)
        assert f"{view.earlier_count} earlier messages" in str(note.content)
        # a click draws the batch before; what was at the top stays in view
        first_before = view.query(UserMessage).first()
        await pilot.click(EarlierMessages)
        await wait_for(pilot, lambda: len(view.query(UserMessage)) == 2 * len(drawn))
        await pilot.pause()
        assert view.scroll_y > 0
        assert view.region.y <= first_before.region.y < view.region.bottom
        # scrolling up to the top draws the rest
        view.scroll_home(animate=False)
        await wait_for(pilot, lambda: view.earlier_count == 0)
        await pilot.pause()
        assert not view.query(EarlierMessages)
        assert [m.text for m in view.query(UserMessage).results(UserMessage)] == [f"question {n}" for n in range(turns)]


async def test_ctrl_home_draws_every_earlier_message_and_goes_to_the_first(make_app: AppFactory, store: Store) -> None:
    long = store.create_conversation("long")
    for n in range(50):
        store.add_message(long.id, "user", f"question {n}")
    app = make_app(FakeBackend())
    async with app.run_test(size=(80, 24)) as pilot:
        await chat(app).open_conversation(long.id)
        view = chat(app).query_one(ConversationView)
        await wait_for(pilot, lambda: view.earlier_count > 0)
        chat(app).query_one("#prompt", TextArea).focus()
        await pilot.press("ctrl+home")
        await wait_for(pilot, lambda: view.earlier_count == 0 and view.scroll_y == 0)
        assert view.query(UserMessage).first().text == "question 0"
        assert len(view.query(UserMessage)) == 50


@pytest.mark.slow
async def test_keyboard_scrolling_and_unfolding_reasoning_while_the_prompt_has_focus(make_app: AppFactory,
                                                                                     store: Store) -> None:
    long = store.create_conversation("long")
    for n in range(30):
        store.add_message(long.id, "user", f"question {n}")
        answer = store.add_message(long.id, "assistant", "", status="streaming")
        store.finish_message(answer.id, content=f"answer {n}\n\nwith a second paragraph", status="complete",
                             reasoning=f"thinking about {n}" if n in (3, 29) else "")
    app = make_app(FakeBackend())
    async with app.run_test(size=(80, 24)) as pilot:
        await chat(app).open_conversation(long.id)
        await pilot.pause()
        view = chat(app).query_one("#conversation")
        prompt = chat(app).query_one("#prompt", TextArea)
        prompt.focus()
        await wait_for(pilot, lambda: view.max_scroll_y > 0 and view.scroll_y == view.max_scroll_y)
        bottom = view.scroll_y
        await pilot.press("pageup")
        await pilot.pause()
        assert 0 < view.scroll_y < bottom
        assert prompt.has_focus
        await pilot.press("pagedown")
        await pilot.pause()
        assert view.scroll_y == bottom
        await pilot.press("ctrl+home")
        await pilot.pause()
        assert view.scroll_y == 0
        await pilot.press("ctrl+end")
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y
        # ctrl+t unfolds the last answer's reasoning, and folds it again
        block = chat(app).query(AssistantMessage).last().block
        assert block.collapsed
        await pilot.press("ctrl+t")
        assert not block.collapsed and prompt.has_focus
        await pilot.press("ctrl+t")
        assert block.collapsed
        # an earlier one by Tab: shift+Tab from the prompt reaches a reasoning title, Enter unfolds it
        for _ in range(6):
            await pilot.press("shift+tab")
            if type(app.focused).__name__ == "CollapsibleTitle":
                break
        assert type(app.focused).__name__ == "CollapsibleTitle"
        await pilot.press("enter")
        assert not block.collapsed


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_small_terminals_keep_the_title_badge_and_numbers_whole(make_app: AppFactory,
                                                                     size: tuple[int, int]) -> None:
    demo = ModelInfo("hermes-4-405b", 131072, Decimal("1.0"), Decimal("3.0"), simulated=True,
                     upstream="demo (simulated)")
    fake = FakeBackend(scripts=(Script(reasoning=("Hmm.",), prompt_tokens=12345, cost_usd=Decimal("0.0123")),),
                       budget_info=BudgetInfo(Decimal("1234.56"), "past 80%", "default"), simulated=True,
                       model_list=(demo,), label="in-process · demo (SIMULATED) · team default")
    app = make_app(fake, settings=ChatSettings(reasoning=True))
    async with app.run_test(size=size, notifications=True) as pilot:
        await wait_for(pilot, lambda: connected(app))
        await pilot.pause()
        screen = chat(app)
        prompt = screen.query_one("#prompt")
        # the start-up "simulated" notice does not cover the prompt
        await wait_for(pilot, lambda: app.screen.query("Toast"))
        toasts = list(app.screen.query("Toast"))
        assert all(t.region.y + t.region.height <= prompt.region.y for t in toasts)
        await send(pilot, "Explain recursion with an example please")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        await pilot.pause()

        def shown(selector: str) -> str:
            widget = screen.query_one(selector)
            assert widget.display and widget.region.right <= size[0], selector
            text = str(widget.content)  # type: ignore[attr-defined]
            assert widget.region.width >= len(text), selector  # whole, not cut
            return text

        title = screen.query_one("#chat-title")
        assert title.region.width >= 16  # a long title is shortened with an ellipsis, and stays readable

        assert shown("#simulated-badge") == "SIMULATED"
        assert shown("#usage-reply").endswith("$0.0123")
        assert shown("#usage-context") == "ctx 9.4%"
        assert shown("#usage-chat").endswith("$0.0123")
        assert shown("#usage-budget").endswith("$1,234.56 left")


async def test_a_budget_shorter_than_a_reservation_says_what_a_message_may_reserve(make_app: AppFactory) -> None:
    short = BudgetInfo(Decimal("0.25"), None, "default", reserved_usd=Decimal("0.80"))
    fake = FakeBackend(budget_info=short)
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        budget = chat(app).query_one("#usage-budget")
        assert str(budget.content) == "⚠ budget $0.25 left · a message may reserve $0.80"  # type: ignore[attr-defined]
        assert budget.has_class("-warning")
        chat(app).budget = BudgetInfo(Decimal("5.00"), None, "default", reserved_usd=Decimal("0.80"))
        chat(app).refresh_usage()
        assert str(budget.content) == "budget $5.00 left"  # type: ignore[attr-defined]


async def test_a_finished_turn_is_few_widgets(make_app: AppFactory) -> None:
    """Every layout walks every widget of the conversation: a user's message is one widget, a header one more."""
    fake = FakeBackend(scripts=(Script(content=("Short answer.",)),))
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        question = chat(app).query_one(UserMessage)
        assert list(question.walk_children()) == []
        assert "You" in str(question.render_line(0).text) and "⧉ copy" in str(question.render_line(0).text)
        answer = chat(app).query_one(AssistantMessage)
        header = answer.query_one("MessageHeader")
        assert list(header.walk_children()) == []
        assert "Hermes" in str(header.render_line(0).text)
