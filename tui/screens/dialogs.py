"""Small modal dialogs: ask for a line or a block of text, confirm a destructive action, choose one of a few."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, OptionList, Static, TextArea


class TextPromptScreen(ModalScreen[str | None]):
    """Ask for text. Dismisses with the text, or ``None`` when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Save", show=False),
    ]

    def __init__(self, title: str, value: str = "", *, multiline: bool = False, help_text: str = "",
                 action_label: str = "Save", placeholder: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.dialog_title = title
        self.value = value
        self.multiline = multiline
        self.help_text = help_text
        self.action_label = action_label
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.dialog_title, classes="dialog-title", markup=False)
            if self.help_text:
                yield Static(self.help_text, classes="dialog-help", markup=False)
            if self.multiline:
                yield TextArea(self.value, id="dialog-input", soft_wrap=True, tab_behavior="focus",
                               placeholder=self.placeholder)
            else:
                yield Input(self.value, id="dialog-input", placeholder=self.placeholder)
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.action_label, variant="primary", id="dialog-ok")
                yield Button("Cancel", id="dialog-cancel")

    def on_mount(self) -> None:
        self.query_one("#dialog-input").focus()

    def _text(self) -> str:
        widget = self.query_one("#dialog-input")
        return widget.text if isinstance(widget, TextArea) else widget.value if isinstance(widget, Input) else ""

    def action_submit(self) -> None:
        self.dismiss(self._text())

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted, "#dialog-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    @on(Button.Pressed, "#dialog-ok")
    def _ok(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#dialog-cancel")
    def _cancel(self) -> None:
        self.action_cancel()


class ConfirmScreen(ModalScreen[bool]):
    """Ask yes or no; ``y`` confirms, ``n`` or Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "answer(False)", "Cancel"),
        Binding("y", "answer(True)", "Confirm"),
    ]

    def __init__(self, question: str, *, confirm_label: str = "Delete") -> None:
        super().__init__(classes="dialog-screen")
        self.question = question
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="dialog-title", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.confirm_label} (y)", variant="error", id="dialog-ok")
                yield Button("Cancel (n)", id="dialog-cancel")

    def on_mount(self) -> None:
        self.query_one("#dialog-cancel", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed, "#dialog-ok")
    def _ok(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#dialog-cancel")
    def _cancel(self) -> None:
        self.dismiss(False)


class ChoiceScreen(ModalScreen[int | None]):
    """Choose one of a few options (Enter or a click); dismisses with its index, or ``None`` on Escape."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, options: Sequence[str | Text], *, help_text: str = "enter choose · esc cancel",
                 highlighted: int = 0) -> None:
        super().__init__(classes="dialog-screen")
        self.dialog_title = title
        self.options = list(options)
        self.help_text = help_text
        self.highlighted = highlighted

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.dialog_title, classes="dialog-title", markup=False)
            yield OptionList(*self.options, id="choices")
            yield Static(self.help_text, classes="dialog-help", markup=False)

    def on_mount(self) -> None:
        options = self.query_one("#choices", OptionList)
        options.focus()
        if self.options:
            options.highlighted = min(max(self.highlighted, 0), len(self.options) - 1)

    @on(OptionList.OptionSelected, "#choices")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option_index)

    def action_cancel(self) -> None:
        self.dismiss(None)
