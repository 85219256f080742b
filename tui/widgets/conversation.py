"""The conversation pane: a saved conversation drawn from the store, new turns, notes, and what can be copied."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text
from textual import events, on
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import AwaitMount, Widget

from tui.backend import BackendError, ModelInfo, error_kind
from tui.settings import ShowReasoning
from tui.store import StoredMessage
from tui.tool_calls import ToolCallBlock, answer_parts, call_line, call_names, tool_result_block
from tui.transcript import message_meta
from tui.widgets.messages import AssistantMessage, NoteMessage, UserMessage, error_note


def reply_label(model: str, upstream: str | None = None, simulated: bool = False) -> str:
    """Who answered: ``Hermes · hermes-4-405b · openrouter``, marked SIMULATED when it was the simulated Hermes."""
    label = f"Hermes · {model}"
    if upstream:
        label += f" · {upstream}"
    if simulated and "simulated" not in label.lower():
        label += " · SIMULATED"
    return label


def stored_label(model: str | None, models: dict[str, ModelInfo]) -> str:
    """The label of a saved answer, with its upstream when the model is still offered."""
    info = models.get(model) if model else None
    if info is None:
        return reply_label(model or "unknown model")
    return reply_label(info.alias, info.upstream, info.simulated)


def welcome_note() -> NoteMessage:
    text = Text.assemble(
        ("Ask Hermes anything.", "bold"), "\n",
        "ctrl+r or the switch below turns reasoning on/off for the next message · "
        "ctrl+o saved chats · ctrl+p every command · F1 keys",
    )
    return NoteMessage(text, classes="welcome")


def system_note(system_prompt: str) -> NoteMessage:
    text = Text.assemble(("System prompt: ", "bold"), system_prompt.strip(), ("  (F4 to edit)", "dim"))
    return NoteMessage(text, classes="system-note")


#: a saved conversation opens with about this many of its last widgets (messages, tool blocks, notes) mounted: every
#: layout of the screen (each streamed frame among them) walks every widget, so a long chat would stream ever slower
WINDOW = 40


class EarlierMessages(NoteMessage):
    """At the top of a long conversation: how many earlier messages are not drawn yet. A click, scrolling up to it,
    or ctrl+home draws them."""

    class Pressed(Message):
        pass

    def __init__(self, count: int) -> None:
        super().__init__(self.text(count), classes="earlier-messages")

    @staticmethod
    def text(count: int) -> Text:
        return Text.assemble((f"⋯ {count:,} earlier message{'s' if count != 1 else ''}", "bold"),
                             ("  (scroll up, click or ctrl+home to show them)", "dim"))

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.post_message(self.Pressed())


def _window_start(widgets: Sequence[Widget], keep: int) -> int:
    """Where the drawn part starts: ``keep`` widgets from the end, moved forward to a user's message (a turn is
    never cut in two)."""
    start = max(0, len(widgets) - keep)
    while start < len(widgets) and start > 0 and not isinstance(widgets[start], UserMessage):
        start += 1
    return start if start < len(widgets) else max(0, len(widgets) - keep)


class ConversationView(VerticalScroll):
    """The messages of the conversation on screen. It follows new text unless the user scrolls up. A long
    conversation is drawn from its end, earlier messages as the user goes up to them (see :data:`WINDOW`)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, can_focus=True)
        self._earlier: list[Widget] = []  # built, not mounted yet: the oldest first
        self._mode: ShowReasoning = "auto"

    @property
    def earlier_count(self) -> int:
        """Messages of the conversation not drawn yet (above the top)."""
        return sum(isinstance(w, (UserMessage, AssistantMessage)) for w in self._earlier)

    async def show_earlier(self, *, everything: bool = False) -> None:
        """Draw the next batch of earlier messages (or all of them) above the top, keeping what was in view."""
        if not self._earlier:
            return
        start = 0 if everything else _window_start(self._earlier, WINDOW)
        batch, self._earlier = self._earlier[start:], self._earlier[:start]
        for widget in batch:
            if isinstance(widget, AssistantMessage):
                widget.mode = self._mode
        note = self.query_one(EarlierMessages)
        first_drawn = next((w for w in self.children if w is not note and not w.has_class("system-note")), None)
        await self.mount_all(batch, after=note)
        if self._earlier:
            note.update(EarlierMessages.text(self.earlier_count))
        else:
            await note.remove()
        if first_drawn is not None and not everything:
            self.call_after_refresh(self.scroll_to_widget, first_drawn, animate=False, top=True)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._earlier and new_value <= 0 < old_value:  # the user went up to the top
            self.run_worker(self.show_earlier(), group="earlier", exclusive=True)

    @on(EarlierMessages.Pressed)
    async def _earlier_pressed(self, event: EarlierMessages.Pressed) -> None:
        event.stop()
        await self.show_earlier()

    async def show(self, history: Sequence[StoredMessage], *, system_prompt: str, label: Callable[[str | None], str],
                   mode: ShowReasoning, connection_error: BackendError | None = None) -> None:
        """Draw a conversation from its saved messages (a welcome when there are none); a long one from its end."""
        await self.remove_children()
        self._mode = mode
        widgets: list[Widget] = []
        if not history:
            widgets.append(welcome_note())
        names: dict[str, str] = {}
        for message in history:
            if message.role == "user":
                widgets.append(UserMessage(message.content, message_id=message.id))
                continue
            if message.role == "tool":
                widgets.append(tool_result_block(message, names))
                continue
            parts = answer_parts(message.content, message.tool_calls)
            names.update(call_names(parts.calls))
            if message.status != "error" or parts.text or message.reasoning:
                widgets.append(AssistantMessage(
                    label=label(message.model),
                    content=parts.text,
                    reasoning=message.reasoning,
                    reasoning_tokens=message.reasoning_tokens,
                    estimated=message.estimated,
                    meta=message_meta(message),
                    mode=mode,
                    message_id=message.id,
                ))
            if parts.calls:
                widgets.append(ToolCallBlock([call_line(call) for call in parts.calls]))
            if message.status == "error":
                widgets.append(error_note(message.error or "unknown error", error_kind(message.error_kind)))
        if connection_error is not None and not history:
            widgets.append(error_note(connection_error.message, connection_error.kind))
        start = _window_start(widgets, WINDOW)
        self._earlier = widgets[:start]
        top: list[Widget] = [system_note(system_prompt)] if system_prompt.strip() else []
        if self._earlier:
            top.append(EarlierMessages(self.earlier_count))
        await self.mount_all([*top, *widgets[start:]])
        self.anchor()

    async def add_turn(self, question: UserMessage, answer: AssistantMessage) -> None:
        """The user's message and the (streaming) answer under it; the view follows them."""
        for note in self.query(".welcome"):
            await note.remove()
        await self.mount_all([question, answer])
        self.anchor()

    def add_error(self, error: BackendError) -> AwaitMount:
        return self.mount(error_note(error.message, error.kind))

    async def set_system_prompt(self, system_prompt: str) -> None:
        for note in self.query(".system-note"):
            await note.remove()
        if system_prompt.strip():
            await self.mount(system_note(system_prompt), before=0)

    def answers(self) -> list[AssistantMessage]:
        return list(self.query(AssistantMessage))

    def apply_mode(self, mode: ShowReasoning) -> None:
        self._mode = mode
        for answer in self.answers():
            answer.apply_mode(mode)

    def last_answer(self) -> str | None:
        return next((view.content for view in reversed(self.answers()) if view.content), None)

    def last_code_block(self) -> str | None:
        return next((blocks[-1] for view in reversed(self.answers()) if (blocks := view.code_blocks())), None)
