"""hermes-chat: the Textual app. A thin shell around :class:`~tui.screens.chat.ChatScreen`.

The app owns the store, the settings (the reasoning display and the theme are remembered in the store) and the
backend. The backend is built after the first screen is up (building
the in-process gateway or importing the ``openai`` SDK takes a moment), so the chat appears at once and says
"connecting…" until it is ready.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from textual.app import App, SystemCommand
from textual.screen import Screen
from textual.theme import Theme

from tui.backend import BackendError, BackendFactory, ChatBackend
from tui.screens.chat import ChatScreen
from tui.settings import SHOW_REASONING_HELP, SHOW_REASONING_MODES, ChatSettings
from tui.store import Store


class HermesChatApp(App[None]):
    CSS_PATH = "hermes_chat.tcss"
    TITLE = "hermes-chat"

    def __init__(self, *, store: Store, settings: ChatSettings | None = None, backend: ChatBackend | None = None,
                 backend_factory: BackendFactory | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        settings = settings or ChatSettings()
        saved = store.setting("show_reasoning")
        if saved in SHOW_REASONING_MODES:
            settings = replace(settings, show_reasoning=saved)  # type: ignore[arg-type]
        self.store = store
        self.settings = settings
        self.backend: ChatBackend | None = backend
        self._backend_factory = backend_factory
        self._monotonic = monotonic
        self._chat_screen: ChatScreen | None = None

    @property
    def chat_screen(self) -> ChatScreen:
        if self._chat_screen is None:
            self._chat_screen = ChatScreen(store=self.store, settings=self.settings, monotonic=self._monotonic)
        return self._chat_screen

    def get_default_screen(self) -> Screen[None]:
        return self.chat_screen

    def on_mount(self) -> None:
        """The theme chosen last time (ctrl+p → theme) is remembered in the chat database."""
        saved = self.store.setting("theme")
        if saved and saved in self.available_themes:
            self.theme = saved
        self.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, theme: Theme) -> None:
        if self.store.setting("theme") != theme.name:
            self.store.set_setting("theme", theme.name)

    async def open_backend(self) -> ChatBackend:
        """The backend, built on first use by the factory."""
        if self.backend is None:
            if self._backend_factory is None:
                raise BackendError("no backend is configured", "other")
            self.backend = await self._backend_factory()
        return self.backend

    async def close_backend(self) -> None:
        if self.backend is not None:
            backend, self.backend = self.backend, None
            await backend.aclose()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        chat = self.chat_screen
        if chat.reply is not None:
            yield SystemCommand("Stop the reply", "Stop streaming; keep, save and bill what arrived (Esc)",
                                chat.action_stop)
        state = "OFF" if chat.reasoning_on else "ON"
        yield SystemCommand(f"Reasoning: turn {state}", "Reasoning on/off for the next message (ctrl+r)",
                            chat.action_toggle_reasoning)
        for mode in SHOW_REASONING_MODES:
            yield SystemCommand(f"Reasoning display: {mode}", SHOW_REASONING_HELP[mode].capitalize(),
                                lambda mode=mode: chat.action_reasoning_display(mode))  # type: ignore[misc]
        yield SystemCommand("Regenerate the last answer", "With the model and reasoning switch as they are now; "
                            "after an error, retry (ctrl+g)", chat.action_regenerate)
        for on in (True, False):
            yield SystemCommand(f"Regenerate with reasoning {'ON' if on else 'OFF'}",
                                "Answer the last message again with reasoning turned so",
                                lambda on=on: chat.action_regenerate_with(on))  # type: ignore[misc]
        yield SystemCommand("Edit an earlier message", "Edit one of your messages and continue from there (F8)",
                            chat.action_edit)
        yield SystemCommand("New chat", "Start a new conversation (ctrl+n)", chat.action_new_chat)
        yield SystemCommand("Conversations", "Go to the list of saved conversations (ctrl+o)",
                            chat.action_open_conversations)
        yield SystemCommand("Search conversations", "Search titles and messages (ctrl+f)", chat.action_search)
        yield SystemCommand("Rename conversation", "Rename this conversation (F2)", chat.action_rename)
        yield SystemCommand("Delete conversation", "Delete this conversation, after confirmation",
                            chat.action_delete)
        yield SystemCommand("System prompt", "Set this conversation's system prompt (F4)", chat.action_system_prompt)
        yield SystemCommand("Chat settings", "Temperature, max tokens and reasoning of this conversation (F9)",
                            chat.action_chat_settings)
        yield SystemCommand("Model and upstream", "Pick the model for this conversation (F3)", chat.action_pick_model)
        yield SystemCommand("Export to markdown", "Write this conversation to a .md file (ctrl+s)", chat.action_export)
        yield SystemCommand("Copy last answer", "Copy the last answer to the clipboard (F5)",
                            chat.action_copy_last_answer)
        yield SystemCommand("Copy last code block", "Copy the last code block to the clipboard (F6)",
                            chat.action_copy_last_code)
        yield SystemCommand("Show/hide conversation list", "Toggle the sidebar (ctrl+b)", chat.action_toggle_sidebar)
        yield SystemCommand("Help", "Every key of the chat (F1)", chat.action_help)
