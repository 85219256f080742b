"""The chat screen's commands that do not stream: model, settings, copy, scroll, fold, edit, help; and the preview
of what sending the prompt would cost (:mod:`tui.next_turn`), under the prompt while no reply streams.

:class:`ChatActions` sits between :class:`~tui.screens.conversations.SavedConversations` and
:class:`~tui.screens.chat.ChatScreen`, which provides the state and the streaming.
"""

from __future__ import annotations

from dataclasses import replace

from textual import on
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import TextArea

from tui.backend import ModelInfo
from tui.next_turn import DEBOUNCE_S, HistoryTokens, next_turn_from
from tui.screens.chat_settings import ChatSettingsResult, ChatSettingsScreen
from tui.screens.conversations import SavedConversations
from tui.screens.dialogs import ChoiceScreen, TextPromptScreen
from tui.screens.help import HelpScreen
from tui.screens.model_picker import ModelPickerScreen
from tui.settings import NO_PARAMS, SHOW_REASONING_HELP, ChatParams, ChatSettings, ShowReasoning
from tui.transcript import chat_messages
from tui.widgets.conversation import ConversationView
from tui.widgets.prompt import PromptInput
from tui.widgets.status import ChatParamsButton, UsageBar


def _one_line(text: str, width: int = 70) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


class ChatActions(SavedConversations):
    """Commands on the chat that do not stream (see the module docstring)."""

    reasoning_on: reactive[bool] = reactive(False)

    # provided by the chat screen
    settings: ChatSettings
    models: dict[str, ModelInfo]
    model_alias: str | None
    draft_params: ChatParams

    def set_model(self, alias: str) -> None:
        raise NotImplementedError

    async def edit_message(self, message_id: int, text: str, *, keep_branch: bool) -> bool:
        raise NotImplementedError

    async def regenerate(self) -> bool:
        raise NotImplementedError

    # --- regenerate -----------------------------------------------------------------------------------------------

    async def action_regenerate(self) -> None:
        await self.regenerate()

    async def action_regenerate_with(self, reasoning: bool) -> None:
        """Regenerate the last answer with reasoning on or off (the switch stays so for the next messages)."""
        if self.reply is None:
            self.reasoning_on = reasoning
        await self.regenerate()

    # --- the conversation's settings ------------------------------------------------------------------------------

    @property
    def chat_params(self) -> ChatParams:
        """Temperature and max tokens sent with the next message: the conversation's, or the new chat's."""
        return self.conversation.params if self.conversation is not None else self.draft_params

    def show_params(self) -> None:
        compact = self.has_class("-compact") or self.size.width < 72
        self.query_one(ChatParamsButton).show(self.chat_params, compact=compact)

    def set_chat_settings(self, params: ChatParams, reasoning: bool) -> None:
        """Save the settings with the conversation (a new chat keeps them until its first message creates it)."""
        if self.conversation is not None:
            self.store.set_params(self.conversation.id, params)
            self.conversation = replace(self.conversation, params=params)
        else:
            self.draft_params = params
        self.reasoning_on = reasoning  # saved with the conversation by the switch's watcher
        self.show_params()
        self.refresh_next_turn()

    def action_chat_settings(self) -> None:
        title = f"Settings of “{self.conversation.title}”" if self.conversation else "Settings of this new chat"

        def chosen(result: ChatSettingsResult | None) -> None:
            if result is not None:
                self.set_chat_settings(result.params, result.reasoning)
                summary = result.params.summary() or "defaults"
                self.notify(f"Chat settings: {summary}, reasoning {'ON' if result.reasoning else 'OFF'}.")

        self.app.push_screen(ChatSettingsScreen(title, self.chat_params, self.reasoning_on), chosen)

    @on(ChatParamsButton.Pressed)
    def _params_pressed(self, event: ChatParamsButton.Pressed) -> None:
        event.stop()
        self.action_chat_settings()

    def reset_draft_params(self) -> None:
        self.draft_params = NO_PARAMS

    # --- what sending the prompt would cost ------------------------------------------------------------------------

    _next_turn_timer: Timer | None = None
    _history_tokens: HistoryTokens | None = None

    @property
    def history_tokens(self) -> HistoryTokens:
        """The estimate of the conversation's history (system prompt and turns as sent), kept while the user types."""
        if self._history_tokens is None:
            self._history_tokens = HistoryTokens()
        return self._history_tokens

    @on(TextArea.Changed, "#prompt")
    def _draft_changed(self, event: TextArea.Changed) -> None:
        """Work the preview out once typing pauses; at once when the prompt was emptied (sent or cleared)."""
        if self._next_turn_timer is not None:
            self._next_turn_timer.stop()
            self._next_turn_timer = None
        if not event.text_area.text.strip():
            self.refresh_next_turn()
        else:
            self._next_turn_timer = self.set_timer(DEBOUNCE_S, self.refresh_next_turn)

    def refresh_next_turn(self) -> None:
        """Show what sending the prompt would cost now (hidden while a reply streams or the prompt is blank).

        The history's estimate is kept until the screen says the conversation changed (``history_tokens.forget()``,
        whenever its numbers are refreshed): typing only estimates the draft again.
        """
        if self._next_turn_timer is not None:
            self._next_turn_timer.stop()
            self._next_turn_timer = None
        try:
            usage, prompt = self.query_one(UsageBar), self.query_one(PromptInput)
        except NoMatches:
            return
        if self.reply is not None or not prompt.text.strip():
            usage.show_next(None)
            return
        conversation = self.conversation
        system_prompt = conversation.system_prompt if conversation is not None else self.draft_system_prompt
        history = self.history_tokens.tokens(
            (conversation.id if conversation is not None else None, system_prompt),
            lambda: chat_messages(system_prompt, self.store.messages(conversation.id) if conversation else []))
        model = self.models.get(self.model_alias) if self.model_alias is not None else None
        usage.show_next(next_turn_from(history, prompt.text, model, self.chat_params))

    # --- model, copy, display, scrolling --------------------------------------------------------------------------

    def action_pick_model(self) -> None:
        def picked(alias: str | None) -> None:
            if alias:
                self.set_model(alias)
                self.notify(f"Model: {alias}")

        self.app.push_screen(ModelPickerScreen(list(self.models.values()), self.model_alias), picked)

    def action_copy_last_answer(self) -> None:
        answer = self.query_one(ConversationView).last_answer()
        if answer is None:
            self.notify("No answer to copy yet.", severity="warning")
            return
        self.app.copy_to_clipboard(answer)
        self.notify("Answer copied to the clipboard.")

    def action_copy_last_code(self) -> None:
        code = self.query_one(ConversationView).last_code_block()
        if code is None:
            self.notify("No code block in this conversation.", severity="warning")
            return
        self.app.copy_to_clipboard(code)
        self.notify("Code block copied to the clipboard.")


    def action_reasoning_display(self, mode: str) -> None:
        if mode not in SHOW_REASONING_HELP:
            return
        show: ShowReasoning = mode  # type: ignore[assignment]
        self.settings = replace(self.settings, show_reasoning=show)
        self.store.set_setting("show_reasoning", show)
        self.query_one(ConversationView).apply_mode(show)
        self.notify(f"Reasoning display: {mode} ({SHOW_REASONING_HELP[mode]}).")

    @on(PromptInput.ScrollRequested)
    def _prompt_scroll(self, event: PromptInput.ScrollRequested) -> None:
        event.stop()
        self.action_scroll_conversation("page_up" if event.direction < 0 else "page_down")

    def action_scroll_conversation(self, where: str) -> None:
        """Scroll the conversation from the keyboard (the prompt keeps the focus); the end follows new text again."""
        view = self.query_one(ConversationView)
        if where == "page_up":
            view.scroll_page_up(animate=False)
        elif where == "page_down":
            view.scroll_page_down(animate=False)
        elif where == "home":  # the top of the conversation: its earlier messages drawn first
            self.run_worker(self._scroll_to_start(view), group="scroll-home", exclusive=True)
        else:
            view.anchor()

    async def _scroll_to_start(self, view: ConversationView) -> None:
        await view.show_earlier(everything=True)
        view.scroll_home(animate=False)
        view.call_after_refresh(view.scroll_home, animate=False)

    def action_toggle_last_reasoning(self) -> None:
        """Fold or unfold the reasoning of the last answer that has some."""
        answer = next((a for a in reversed(self.query_one(ConversationView).answers()) if a.reasoning), None)
        if answer is None:
            self.notify("No reasoning to unfold in this conversation.", severity="warning")
            return
        block = answer.block
        if not block.display:
            self.notify("The reasoning display is 'never' (ctrl+p → Reasoning display to change it).",
                        severity="warning")
            return
        block.collapsed = not block.collapsed
        if not block.collapsed:
            self.query_one(ConversationView).scroll_to_widget(block, animate=False, top=True)


    def action_edit(self) -> None:
        """Pick one of your messages, edit it, and continue the conversation from there."""
        if self.reply is not None:
            self.notify("A reply is streaming: press Esc to stop it first.", severity="warning")
            return
        conversation = self.conversation
        history = self.store.messages(conversation.id) if conversation else []
        questions = [m for m in reversed(history) if m.role == "user"]
        if conversation is None or not questions:
            self.notify("Nothing to edit yet: send a message first.", severity="warning")
            return

        def chosen(index: int | None) -> None:
            if index is None:
                return
            question = questions[index]

            async def edited(text: str | None) -> None:
                if text is None or not text.strip():
                    return

                async def branch(choice: int | None) -> None:
                    if choice is not None:
                        await self.edit_message(question.id, text, keep_branch=choice == 0)

                self.app.push_screen(ChoiceScreen(
                    "The conversation after this message will be replaced. The earlier branch:",
                    [f"Keep it, as the saved conversation “{conversation.title} (earlier branch)”",
                     "Discard it"],
                ), branch)

            self.app.push_screen(TextPromptScreen(
                "Edit your message", question.content, multiline=True, action_label="Send",
                help_text="ctrl+s sends it and the conversation continues from here; Esc cancels.",
            ), edited)

        self.app.push_screen(ChoiceScreen("Edit which message? (newest first)",
                                          [_one_line(q.content) for q in questions]), chosen)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.settings))
