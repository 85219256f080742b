"""The chat screen's saved conversations: the list beside the chat, search, rename, delete, system prompt, export.

:class:`SavedConversations` is the base of :class:`~tui.screens.chat.ChatScreen`: it holds the commands that act on
the saved conversations (through dialogs and the store) so that the chat screen itself is about the chat.
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

from textual import events, on
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Input

from tui.reply import Reply
from tui.screens.dialogs import ConfirmScreen, TextPromptScreen
from tui.store import Conversation, Store
from tui.transcript import slugify, to_markdown
from tui.widgets.conversation import ConversationView
from tui.widgets.conversation_list import ConversationList, Sidebar
from tui.widgets.header import ChatHeader
from tui.widgets.prompt import PromptInput

NARROW = 90  # below this many columns the conversation list starts hidden (ctrl+b shows it)
COMPACT = 72  # below this many columns the header and the numbers take their short forms


class SavedConversations(Screen[None]):
    """The conversation list and the commands on saved conversations. The chat screen provides the rest."""

    show_sidebar: reactive[bool] = reactive(True)
    _sidebar_chosen = False  # the user toggled it: stop hiding/showing it with the width

    # provided by the chat screen
    store: Store
    conversation: Conversation | None
    draft_system_prompt: str
    reply: Reply | None

    async def open_conversation(self, conversation_id: int) -> None:
        raise NotImplementedError

    async def new_chat(self) -> None:
        raise NotImplementedError

    def refresh_next_turn(self) -> None:
        raise NotImplementedError

    def refresh_conversations(self) -> None:
        sidebar = self.query_one(Sidebar)
        current = self.conversation.id if self.conversation else None
        self.query_one(ConversationList).show(self.store.conversations(sidebar.query_text), current)

    def watch_show_sidebar(self, show: bool) -> None:
        with suppress(NoMatches):
            self.query_one(Sidebar).display = show

    def on_resize(self, event: events.Resize) -> None:
        if not self._sidebar_chosen:
            self.show_sidebar = event.size.width >= NARROW
        self.set_class(event.size.width < COMPACT, "-compact")
        self.compact_changed(event.size.width < COMPACT)

    def compact_changed(self, compact: bool) -> None:
        """The terminal became narrow (or wide again): the chat screen shortens its texts."""

    def action_toggle_sidebar(self) -> None:
        self._sidebar_chosen = True
        self.show_sidebar = not self.show_sidebar
        if not self.show_sidebar:
            self.query_one(PromptInput).focus()

    def action_open_conversations(self) -> None:
        self.show_sidebar = True
        conversations = self.query_one(ConversationList)
        conversations.focus()
        if conversations.highlighted is None and conversations.option_count:
            conversations.highlighted = 0

    def action_search(self) -> None:
        self.show_sidebar = True
        self.query_one("#search", Input).focus()

    @on(Sidebar.SearchChanged)
    def _search_changed(self, event: Sidebar.SearchChanged) -> None:
        event.stop()
        self.refresh_conversations()

    @on(ConversationList.Opened)
    async def _conversation_opened(self, event: ConversationList.Opened) -> None:
        event.stop()
        await self.open_conversation(event.conversation_id)
        self.query_one(PromptInput).focus()

    @on(ConversationList.RenameRequested)
    def _rename_requested(self, event: ConversationList.RenameRequested) -> None:
        event.stop()
        self.action_rename(event.conversation_id)

    @on(ConversationList.DeleteRequested)
    def _delete_requested(self, event: ConversationList.DeleteRequested) -> None:
        event.stop()
        self.action_delete(event.conversation_id)

    def action_rename(self, conversation_id: int | None = None) -> None:
        target = conversation_id if conversation_id is not None else (
            self.conversation.id if self.conversation else None)
        if target is None:
            self.notify("Nothing to rename yet: send a message first.", severity="warning")
            return
        conversation = self.store.conversation(target)

        def renamed(title: str | None) -> None:
            if title is None or not title.strip():
                return
            self.store.rename_conversation(target, title.strip())
            if self.conversation is not None and self.conversation.id == target:
                self.conversation = self.store.conversation(target)
                self.query_one(ChatHeader).chat_title = self.conversation.title
            self.refresh_conversations()
            self.notify(f"Renamed to “{title.strip()}”.")

        self.app.push_screen(TextPromptScreen("Rename conversation", conversation.title), renamed)

    def action_delete(self, conversation_id: int | None = None) -> None:
        target = conversation_id if conversation_id is not None else (
            self.conversation.id if self.conversation else None)
        if target is None:
            self.notify("Nothing to delete: this chat is not saved yet.", severity="warning")
            return
        if self.reply is not None and self.reply.conversation_id == target:
            self.notify("A reply is streaming in this conversation: press Esc to stop it first.", severity="warning")
            return
        conversation = self.store.conversation(target)

        async def deleted(confirmed: bool | None) -> None:
            if not confirmed:
                return
            self.store.delete_conversation(target)
            if self.conversation is not None and self.conversation.id == target:
                await self.new_chat()
            self.refresh_conversations()
            self.notify(f"Deleted “{conversation.title}”.")

        self.app.push_screen(ConfirmScreen(f"Delete “{conversation.title}”? This cannot be undone."), deleted)

    def action_system_prompt(self) -> None:
        current = self.conversation.system_prompt if self.conversation else self.draft_system_prompt

        async def saved(text: str | None) -> None:
            if text is None:
                return
            if self.conversation is not None:
                self.store.set_system_prompt(self.conversation.id, text)
                self.conversation = self.store.conversation(self.conversation.id)
            else:
                self.draft_system_prompt = text
            await self.query_one(ConversationView).set_system_prompt(text)
            self.refresh_next_turn()  # the system prompt is sent with the next message
            self.notify("System prompt saved; it applies from the next message." if text.strip()
                        else "System prompt removed.")

        self.app.push_screen(TextPromptScreen(
            "System prompt for this conversation", current, multiline=True,
            help_text="Sent first, before the messages, from the next message on. ctrl+s saves, Esc cancels.",
        ), saved)

    def action_export(self) -> None:
        if self.conversation is None:
            self.notify("Nothing to export yet: send a message first.", severity="warning")
            return
        default = Path.cwd() / f"{slugify(self.conversation.title)}.md"

        def chosen(path: str | None) -> None:
            if path and path.strip():
                self.export_to(Path(path.strip()).expanduser())

        self.app.push_screen(TextPromptScreen("Export this conversation to a markdown file", str(default),
                                              action_label="Export"), chosen)

    def export_to(self, path: Path) -> bool:
        if self.conversation is None:
            return False
        text = to_markdown(self.conversation, self.store.messages(self.conversation.id))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            self.notify(f"Cannot write {path}: {exc.strerror or exc}", title="Export failed", severity="error")
            return False
        self.notify(f"Exported to {path}", title="Exported")
        return True
