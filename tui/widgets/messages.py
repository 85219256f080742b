"""What the conversation is made of: the user's messages, Hermes' answers (with their reasoning block) and notes.

An :class:`AssistantMessage` streams its reasoning into a collapsible :class:`ReasoningBlock` above the answer: open
while thinking, collapsed when the answer starts (in ``auto`` mode), its token count in the title. The answer is
markdown, streamed through Textual's :class:`~textual.widgets.markdown.MarkdownStream`, with code blocks highlighted.
Clicking ``copy`` copies a message (a user's message, and each header, is one widget: every layout walks them all); clicking a code block copies the code.
"""

from __future__ import annotations

from typing import ClassVar

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from rich.console import Group
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult, RenderResult
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Collapsible, Markdown, Static
from textual.widgets.markdown import MarkdownFence, MarkdownStream

from tui.backend import ErrorKind, error_hint, error_title, format_tokens
from tui.settings import ShowReasoning


class MessageHeader(Static):
    """A message's header in one widget: who wrote it on the left, a ``⧉ copy`` link on the right.

    One widget instead of a row of three: every layout of the screen walks every widget of the conversation, so a
    long chat streams faster with fewer of them. Clicking the link posts :class:`MessageHeader.CopyPressed`.
    """

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {"message--who"}

    class CopyPressed(Message):
        pass

    def __init__(self, label: str) -> None:
        super().__init__(classes="message-header", markup=False)
        self.label = label

    def render(self) -> RenderResult:
        return header_grid(self.label, self.get_component_rich_style("message--who"))

    def set_label(self, label: str) -> None:
        self.label = label
        self.refresh()

    def action_copy_message(self) -> None:
        self.post_message(self.CopyPressed())


def header_grid(label: str, who: Style) -> Table:
    """``label`` on the left, the ``⧉ copy`` link (a click runs ``copy_message``; styled by the link-* rules) on the
    right, one line."""
    grid = Table.grid(expand=True)
    grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    grid.add_column(justify="right", no_wrap=True)
    grid.add_row(Text(label, style=who), Text("⧉ copy", style=Style(meta={"@click": "copy_message"})))
    return grid


class UserMessage(Static):
    """One message of the user: its header and its text, drawn as a single widget."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {"message--who"}

    def __init__(self, text: str, *, message_id: int | None = None) -> None:
        super().__init__(classes="message user-message", markup=False)
        self.text = text
        self.message_id = message_id

    def render(self) -> RenderResult:
        header = header_grid("You", self.get_component_rich_style("message--who"))
        return Group(header, Text(self.text))

    def action_copy_message(self) -> None:
        self.app.copy_to_clipboard(self.text)
        self.notify("Message copied to the clipboard.")


def reasoning_title(tokens: int, *, thinking: bool, estimated: bool) -> str:
    count = f"{'~' if estimated else ''}{format_tokens(tokens)} token{'s' if tokens != 1 else ''}"
    return f"Thinking… {count}" if thinking else f"Reasoning · {count}"


def _line_breaking_parser() -> MarkdownIt:
    """Markdown in which a single line break stays a line break (a model's reasoning is written line by line)."""
    parser = MarkdownIt("gfm-like")
    parser.core.ruler.push("keep_line_breaks", _soft_to_hard_breaks)
    return parser


def _soft_to_hard_breaks(state: StateCore) -> None:
    for token in state.tokens:
        for child in token.children or ():
            if child.type == "softbreak":
                child.type = "hardbreak"


class ReasoningBlock(Collapsible):
    """The reasoning of one answer, in a collapsible block whose title carries its token count. Its line breaks are
    kept: in plain markdown a single one would join the lines into one paragraph."""

    def __init__(self, text: str = "", *, title: str = "Reasoning", collapsed: bool = True) -> None:
        body = Markdown(text, classes="reasoning-text", parser_factory=_line_breaking_parser)
        super().__init__(body, title=title, collapsed=collapsed, classes="reasoning")
        self.body = body


class AssistantMessage(Vertical):
    """One answer. Stream into it with :meth:`append_reasoning` / :meth:`append_content`, then :meth:`finish`."""

    def __init__(self, *, label: str, content: str = "", reasoning: str = "", reasoning_tokens: int | None = None,
                 estimated: bool = False, meta: str = "", mode: ShowReasoning = "auto", streaming: bool = False,
                 message_id: int | None = None) -> None:
        super().__init__(classes="message assistant-message")
        self.label = label
        self.content = content
        self.reasoning = reasoning
        self.reasoning_tokens = reasoning_tokens
        self.estimated = estimated
        self.mode: ShowReasoning = mode
        self.streaming = streaming
        self.message_id = message_id
        self._meta = meta
        self._answer_stream: MarkdownStream | None = None
        self._reasoning_stream: MarkdownStream | None = None
        self.set_class(streaming, "-streaming")

    def compose(self) -> ComposeResult:
        yield MessageHeader(self.label)
        tokens = self.reasoning_tokens if self.reasoning_tokens is not None else 0
        block = ReasoningBlock(
            self.reasoning,
            title=reasoning_title(tokens, thinking=False, estimated=self.estimated),
            collapsed=self.mode != "always",
        )
        block.display = bool(self.reasoning) and self.mode != "never"
        yield block
        yield Markdown(self.content, classes="answer")
        yield Static(self._meta, classes="message-meta", markup=False)

    @property
    def block(self) -> ReasoningBlock:
        return self.query_one(ReasoningBlock)

    @property
    def answer(self) -> Markdown:
        return self.query_one(".answer", Markdown)

    # --- streaming ------------------------------------------------------------------------------------------------

    async def append_reasoning(self, text: str, *, tokens: int) -> None:
        if not text:
            return
        self.reasoning += text
        self.reasoning_tokens = tokens
        block = self.block
        if self._reasoning_stream is None:
            block.display = self.mode != "never"
            if not self.content:
                block.collapsed = False
            self._reasoning_stream = Markdown.get_stream(block.body)
        block.title = reasoning_title(tokens, thinking=not self.content, estimated=True)
        await self._reasoning_stream.write(text)

    async def append_content(self, text: str) -> None:
        if not text:
            return
        first = not self.content
        self.content += text
        if first and self.reasoning:
            block = self.block
            if self.mode == "auto":
                block.collapsed = True
            block.title = reasoning_title(self.reasoning_tokens or 0, thinking=False, estimated=True)
        if self._answer_stream is None:
            self._answer_stream = Markdown.get_stream(self.answer)
        await self._answer_stream.write(text)

    async def finish(self, *, reasoning_tokens: int | None, estimated: bool, meta: str) -> None:
        """Stop streaming: re-render the whole text cleanly, put the real token count in the title, show usage."""
        self.streaming = False
        self.remove_class("-streaming")
        if self._answer_stream is not None:
            await self._answer_stream.stop()
            self._answer_stream = None
            await self.answer.update(self.content)
        if self._reasoning_stream is not None:
            await self._reasoning_stream.stop()
            self._reasoning_stream = None
            await self.block.body.update(self.reasoning)
        if self.reasoning:
            self.reasoning_tokens = reasoning_tokens if reasoning_tokens is not None else self.reasoning_tokens
            self.estimated = estimated
            block = self.block
            block.title = reasoning_title(self.reasoning_tokens or 0, thinking=False, estimated=estimated)
            if self.mode == "auto" and self.content:
                block.collapsed = True
        self.set_meta(meta)

    def set_meta(self, meta: str) -> None:
        self._meta = meta
        try:
            widget = self.query_one(".message-meta", Static)
        except NoMatches:
            return
        widget.update(meta)
        widget.display = bool(meta)

    def set_label(self, label: str) -> None:
        self.label = label
        self.query_one(MessageHeader).set_label(label)

    def apply_mode(self, mode: ShowReasoning) -> None:
        """Show or hide the reasoning block under a new display mode."""
        self.mode = mode
        block = self.block
        block.display = bool(self.reasoning) and mode != "never"
        if mode == "always":
            block.collapsed = False
        elif mode == "auto" and self.content:
            block.collapsed = True

    def on_mount(self) -> None:
        self.set_meta(self._meta)

    # --- copying --------------------------------------------------------------------------------------------------

    @on(MessageHeader.CopyPressed)
    def _copy(self, event: MessageHeader.CopyPressed) -> None:
        event.stop()
        if not self.content:
            self.notify("Nothing to copy yet.", severity="warning")
            return
        self.app.copy_to_clipboard(self.content)
        self.notify("Answer copied to the clipboard.")

    def on_click(self, event: events.Click) -> None:
        widget: Widget | None = event.widget
        while widget is not None and widget is not self:
            if isinstance(widget, MarkdownFence):
                event.stop()
                self.app.copy_to_clipboard(widget.code)
                self.notify("Code block copied to the clipboard.")
                return
            parent = widget.parent
            widget = parent if isinstance(parent, Widget) else None

    def code_blocks(self) -> list[str]:
        return [fence.code for fence in self.answer.query(MarkdownFence)]


class NoteMessage(Static):
    """A line in the conversation that is not a message: an error, the system prompt, a welcome."""

    def __init__(self, content: Text | str, *, classes: str = "") -> None:
        super().__init__(content, classes=f"note {classes}".strip(), markup=False)


def error_note(message: str, kind: ErrorKind) -> NoteMessage:
    text = Text.assemble((f"{error_title(kind)}: ", "bold"), message, "\n", (error_hint(kind), "italic"))
    return NoteMessage(text, classes=f"error-note -{kind}")
