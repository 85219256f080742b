"""What a user reads: the reasoning block keeps the model's line breaks; the help (F1) describes the screen as it is
and every key."""

from __future__ import annotations

from fake_backend import AppFactory, FakeBackend, Script, wait_for
from test_tui_app import SIZE, chat, idle, send
from textual.widgets import Markdown, Static
from textual.widgets._markdown import MarkdownParagraph

from tui.app import HermesChatApp
from tui.screens.chat import ChatScreen
from tui.screens.help import HelpScreen
from tui.settings import ChatSettings
from tui.widgets.messages import ReasoningBlock

REASONING = ("The user wants three steps.\nFirst, the base case.\n", "Then the recursive step.\n\n- a list\n- stays")


def reasoning_lines(app: HermesChatApp) -> list[str]:
    """The reasoning block's text as drawn, line by line."""
    block = chat(app).query_one(ReasoningBlock)
    lines: list[str] = []
    for paragraph in block.body.query(MarkdownParagraph):
        lines += [paragraph.render_line(y).text.strip() for y in range(paragraph.size.height)]
    return [line for line in lines if line]


async def test_reasoning_keeps_its_line_breaks_streamed_and_reopened(make_app: AppFactory) -> None:
    fake = FakeBackend(scripts=(Script(reasoning=REASONING, content=("Done.",)),))
    app = make_app(fake, settings=ChatSettings(reasoning=True, show_reasoning="always"))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "three steps")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        await pilot.pause()
        expected = ["The user wants three steps.", "First, the base case.", "Then the recursive step."]
        assert reasoning_lines(app)[:3] == expected
        conversation = chat(app).conversation
        assert conversation is not None
        await chat(app).new_chat()
        await chat(app).open_conversation(conversation.id)  # drawn again from the store
        await pilot.pause()
        assert reasoning_lines(app)[:3] == expected
        assert any("a list" in line for line in reasoning_lines(app))  # markdown still works: a list stays a list


async def test_help_describes_the_layout_and_every_key(make_app: AppFactory) -> None:
    app = make_app(FakeBackend())
    async with app.run_test(size=(120, 45)) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        help_screen = app.screen
        table = help_screen.query_one("#help-keys", Static)
        keys = " ".join(table.render_line(y).text for y in range(table.size.height)).lower()
        source = " ".join(help_screen.query_one("#help-text", Markdown).source.split())
        for part in ("Header", "Conversation list", "Conversation", "Controls row", "Prompt", "Status line",
                     "Footer", "SIMULATED", "tokens per second", "context window", "temp 0.7 · max 512"):
            assert part in source
        for binding in ChatScreen.BINDINGS:
            for key in binding.key.split(","):  # type: ignore[union-attr]
                shown = {"escape": "esc"}.get(key, key)
                assert shown in keys, f"{key} is not in the help"
        for key in ("up / down", "pageup / pagedown", "tab / shift+tab", "ctrl+p", "ctrl+q", "delete", "enter"):
            assert key in keys
        await pilot.press("escape")
        assert app.screen is chat(app)
