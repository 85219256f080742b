"""The multi-line prompt: Enter sends, Shift+Enter or the configured key (ctrl+j by default) inserts a newline.

Nothing typed is lost. The send key posts :class:`PromptInput.Submitted` with the text as it is at that moment; the
screen then calls :meth:`PromptInput.take` (sent: only that text leaves the prompt, whatever was typed since stays)
or :meth:`PromptInput.keep` (not sent: all stays). Until then, and while :attr:`PromptInput.held` is set (a reply is
streaming), the send key inserts a newline instead: that is how the lines of a paste arrive in a terminal without
bracketed paste, and a key pressed too early must not merge two lines.

Up and Down recall earlier prompts, as in a shell: Up on an empty prompt brings back the last one; they only move the
cursor when the prompt holds text the user is editing.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual import events
from textual.message import Message
from textual.widgets import TextArea

HISTORY_LIMIT = 500


class PromptInput(TextArea):
    """A :class:`~textual.widgets.TextArea` that posts :class:`PromptInput.Submitted` on the send key."""

    class Submitted(Message):
        """The user pressed the send key."""

        def __init__(self, prompt: PromptInput, text: str) -> None:
            super().__init__()
            self.prompt = prompt
            self.text = text

        @property
        def control(self) -> PromptInput:
            return self.prompt

    class ScrollRequested(Message):
        """PageUp / PageDown in the prompt: scroll the conversation (``direction`` -1 up, 1 down)."""

        def __init__(self, direction: int) -> None:
            super().__init__()
            self.direction = direction

    class Held(Message):
        """The send key was pressed while a reply streams: a newline went in, nothing was sent."""

    def __init__(self, *, send_key: str = "enter", newline_keys: tuple[str, ...] = ("shift+enter", "ctrl+j"),
                 placeholder: str = "", id: str | None = None, classes: str | None = None) -> None:
        super().__init__(soft_wrap=True, tab_behavior="focus", show_line_numbers=False, highlight_cursor_line=False,
                         compact=False, placeholder=placeholder, id=id, classes=classes)
        self.send_key = send_key
        self.newline_keys = newline_keys
        self.held = False  # set by the screen while a reply streams
        self._pending: str | None = None  # the text posted in Submitted, until the screen takes or keeps it
        self._history: list[str] = []  # oldest first
        self._recalled: int | None = None  # index in _history of the prompt shown, while it is unchanged
        self._draft = ""  # what was in the prompt before the recall started

    # --- sending --------------------------------------------------------------------------------------------------

    async def _on_key(self, event: events.Key) -> None:
        if event.key == self.send_key:
            event.stop()
            event.prevent_default()
            if self._pending is not None or self.held:
                if self.held and self._pending is None:
                    self.post_message(self.Held())
                self._insert_newline()
                return
            if not self.text.strip():
                return
            self._pending = self.text
            self.post_message(self.Submitted(self, self.text))
            return
        if event.key in self.newline_keys:
            event.stop()
            event.prevent_default()
            self._insert_newline()
            return
        await super()._on_key(event)

    def _insert_newline(self) -> None:
        if not self.read_only:
            start, end = self.selection
            self._replace_via_keyboard("\n", start, end)

    def take(self, sent: str) -> None:
        """``sent`` went out: remove it from the prompt and keep whatever was typed after it."""
        self._pending = None
        text = self.text
        rest = text[len(sent):] if text.startswith(sent) else text
        rest = rest.lstrip("\n")
        self._recalled = None
        self._draft = ""
        if rest != text:
            self.text = rest
            self.move_cursor(self.document.end)

    def keep(self) -> None:
        """The submitted text was not sent: it all stays in the prompt."""
        self._pending = None

    # --- PageUp / PageDown scroll the conversation, not the (small) prompt ---------------------------------------

    def action_cursor_page_up(self) -> None:
        self.post_message(self.ScrollRequested(-1))

    def action_cursor_page_down(self) -> None:
        self.post_message(self.ScrollRequested(1))

    # --- history --------------------------------------------------------------------------------------------------

    def set_history(self, prompts: Iterable[str]) -> None:
        """Earlier prompts, oldest first."""
        self._history = [p for p in prompts if p.strip()][-HISTORY_LIMIT:]
        self._recalled = None

    def remember(self, prompt: str) -> None:
        """A prompt just sent: the last one Up brings back."""
        if not prompt.strip():
            return
        if self._history and self._history[-1] == prompt:
            return
        self._history.append(prompt)
        del self._history[:-HISTORY_LIMIT]

    @property
    def prompt_history(self) -> list[str]:
        """Earlier prompts, oldest first (``history`` is the TextArea's undo history)."""
        return list(self._history)

    def _browsing(self) -> bool:
        """The prompt is empty or shows an unchanged recalled prompt: Up/Down move through the history."""
        if self._recalled is not None and self.text == self._history[self._recalled]:
            return True
        self._recalled = None
        return not self.text

    def action_cursor_up(self, select: bool = False) -> None:
        if select or not self._history or not self._browsing() or self.cursor_location[0] != 0:
            super().action_cursor_up(select)
            return
        if self._recalled is None:
            self._draft = self.text
            index = len(self._history) - 1
        else:
            index = max(0, self._recalled - 1)
        self._show_recalled(index)

    def action_cursor_down(self, select: bool = False) -> None:
        last_row = self.document.line_count - 1
        if select or self._recalled is None or not self._browsing() or self.cursor_location[0] != last_row:
            super().action_cursor_down(select)
            return
        if self._recalled + 1 < len(self._history):
            self._show_recalled(self._recalled + 1)
        else:
            self._recalled = None
            self.text = self._draft
            self.move_cursor(self.document.end)

    def _show_recalled(self, index: int) -> None:
        self._recalled = index
        self.text = self._history[index]
        self.move_cursor((0, len(self.document.get_line(0))) if "\n" in self.text else self.document.end)
