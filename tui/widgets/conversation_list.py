"""The sidebar: search box and the saved conversations, most recent first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option, OptionDoesNotExist

from hermes_proxy.money import format_usd
from tui.store import ConversationSummary

TITLE_WIDTH = 28  # the sidebar is 32 columns wide


def _option_id(conversation_id: int) -> str:
    return f"conversation-{conversation_id}"


def _conversation_id(option_id: str | None) -> int | None:
    if option_id is None or not option_id.startswith("conversation-"):
        return None
    return int(option_id.removeprefix("conversation-"))


class ConversationList(OptionList):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f2", "rename", "Rename"),
        Binding("delete", "delete", "Delete"),
    ]

    class Opened(Message):
        """Open this conversation."""

        def __init__(self, conversation_id: int) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    class RenameRequested(Message):
        """Rename this conversation."""

        def __init__(self, conversation_id: int) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    class DeleteRequested(Message):
        """Delete this conversation (after confirmation)."""

        def __init__(self, conversation_id: int) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    def show(self, conversations: Sequence[ConversationSummary], current: int | None) -> None:
        highlighted = self.highlighted_id
        self.clear_options()
        options: list[Option] = []
        for summary in conversations:
            prompt = Text(no_wrap=True, overflow="ellipsis")
            title = summary.title or "Untitled"
            if len(title) > TITLE_WIDTH:
                title = title[: TITLE_WIDTH - 1].rstrip() + "…"
            prompt.append(title, style="bold" if summary.id == current else "")
            prompt.append("\n")
            count = f"{summary.message_count} msg{'s' if summary.message_count != 1 else ''}"
            prompt.append(f"{summary.updated_at:%b %d} · {count} · {format_usd(summary.cost_usd, places=4)}", style="dim")
            options.append(Option(prompt, id=_option_id(summary.id)))
        self.add_options(options)
        wanted = current if highlighted is None else highlighted
        if wanted is not None:
            try:
                self.highlighted = self.get_option_index(_option_id(wanted))
            except OptionDoesNotExist:  # the conversation is not in this (filtered) list
                self.highlighted = 0 if options else None

    @property
    def highlighted_id(self) -> int | None:
        if self.highlighted is None or self.option_count == 0:
            return None
        return _conversation_id(self.get_option_at_index(self.highlighted).id)

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        conversation_id = _conversation_id(event.option.id)
        if conversation_id is not None:
            self.post_message(self.Opened(conversation_id))

    def action_rename(self) -> None:
        if (conversation_id := self.highlighted_id) is not None:
            self.post_message(self.RenameRequested(conversation_id))

    def action_delete(self) -> None:
        if (conversation_id := self.highlighted_id) is not None:
            self.post_message(self.DeleteRequested(conversation_id))


class Sidebar(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.focus('prompt')", "Back to the prompt", show=False)]

    class SearchChanged(Message):
        def __init__(self, query: str) -> None:
            super().__init__()
            self.query = query

    def compose(self) -> ComposeResult:
        yield Static("Conversations", id="sidebar-title")
        yield Input(placeholder="Search (ctrl+f)", id="search")
        yield ConversationList(id="conversation-list")
        yield Static("⏎ open · F2 rename · Del delete", id="sidebar-hint")

    @property
    def query_text(self) -> str:
        return self.query_one("#search", Input).value

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.SearchChanged(event.value))

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        conversations = self.query_one(ConversationList)
        if conversations.option_count:
            conversations.focus()
            if conversations.highlighted is None:
                conversations.highlighted = 0
