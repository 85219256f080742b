"""The conversation's settings (F9): temperature, max tokens and the reasoning switch, saved with the conversation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, Switch

from tui.settings import ChatParams, parse_params


@dataclass(frozen=True, slots=True)
class ChatSettingsResult:
    params: ChatParams
    reasoning: bool


def _on_off(on: bool) -> str:
    return "ON" if on else "OFF"


class ChatSettingsScreen(ModalScreen[ChatSettingsResult | None]):
    """Edit a conversation's settings. Dismisses with them, or ``None`` when cancelled; a bad value is said in place."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Save", show=False),
    ]

    def __init__(self, title: str, params: ChatParams, reasoning: bool) -> None:
        super().__init__(classes="dialog-screen")
        self.dialog_title = title
        self.params = params
        self.reasoning = reasoning

    def compose(self) -> ComposeResult:
        temperature = "" if self.params.temperature is None else f"{self.params.temperature:g}"
        max_tokens = "" if self.params.max_tokens is None else str(self.params.max_tokens)
        with Vertical(classes="dialog chat-settings"):
            yield Static(self.dialog_title, classes="dialog-title", markup=False)
            yield Static("Sent with every message of this conversation. Blank: the model's default (and the team's "
                         "policy for max tokens).", classes="dialog-help", markup=False)
            with Horizontal(classes="setting-row"):
                yield Label("Temperature (0-2)", classes="setting-label")
                yield Input(temperature, id="setting-temperature", placeholder="default", type="number")
            with Horizontal(classes="setting-row"):
                yield Label("Max tokens", classes="setting-label")
                yield Input(max_tokens, id="setting-max-tokens", placeholder="default", type="integer")
            with Horizontal(classes="setting-row"):
                yield Label("Reasoning (ctrl+r)", classes="setting-label")
                yield Switch(self.reasoning, id="setting-reasoning")
                yield Static(_on_off(self.reasoning), id="setting-reasoning-state", markup=False)
            yield Static("", id="setting-error", classes="dialog-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="dialog-ok")
                yield Button("Cancel", id="dialog-cancel")

    def on_mount(self) -> None:
        self.query_one("#setting-temperature", Input).focus()

    def action_submit(self) -> None:
        try:
            params = parse_params(self.query_one("#setting-temperature", Input).value,
                                  self.query_one("#setting-max-tokens", Input).value)
        except ValueError as exc:
            self.query_one("#setting-error", Static).update(str(exc))
            return
        self.dismiss(ChatSettingsResult(params, self.query_one("#setting-reasoning", Switch).value))

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Switch.Changed, "#setting-reasoning")
    def _switched(self, event: Switch.Changed) -> None:
        self.query_one("#setting-reasoning-state", Static).update(_on_off(event.value))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    @on(Button.Pressed, "#dialog-ok")
    def _ok(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#dialog-cancel")
    def _cancel(self) -> None:
        self.action_cancel()
