"""Help (F1): how the screen is laid out, what each number means, and every key."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown, Static

from tui.settings import SHOW_REASONING_HELP, ChatSettings


def _key_name(key: str) -> str:
    return {"enter": "Enter", "shift+enter": "Shift+Enter"}.get(key, key)


def key_table(settings: ChatSettings) -> list[tuple[str, str]]:
    """Every key of the chat with what it does (also the README's table)."""
    newline = " or ".join(_key_name(k) for k in settings.newline_keys)
    return [
        (_key_name(settings.send_key), "send the message"),
        (newline, "new line in the message"),
        ("Up / Down", "in the prompt: earlier prompts, as in a shell (Up on an empty prompt brings back the last)"),
        ("Esc or ctrl+c", "stop the reply (what arrived is kept, saved and billed)"),
        ("ctrl+r", "reasoning on/off for the next message (or click the switch)"),
        ("ctrl+g", "regenerate the last answer with the model and switch as they are now; after an error, retry"),
        ("F8", "edit one of your messages and continue from there (the earlier branch kept or discarded)"),
        ("F9", "this conversation's settings: temperature, max tokens, reasoning (saved with it)"),
        ("PageUp / PageDown", "scroll the conversation (the prompt keeps the focus)"),
        ("ctrl+home / ctrl+end", "top of the conversation / back to the end (it follows new text again)"),
        ("ctrl+t", "fold/unfold the reasoning of the last answer (others: Tab to a reasoning title, Enter)"),
        ("ctrl+n", "new chat"),
        ("ctrl+o", "go to the conversation list (Enter opens the highlighted one, Esc goes back to the prompt)"),
        ("ctrl+f", "search the conversations"),
        ("ctrl+b", "show/hide the conversation list"),
        ("F2", "rename the conversation (in the list: the highlighted one)"),
        ("Delete", "in the list: delete the highlighted conversation"),
        ("F3", "model and upstream (or click the model above the prompt)"),
        ("F4", "system prompt of this conversation"),
        ("ctrl+s", "export this conversation to a markdown file"),
        ("F5", "copy the last answer"),
        ("F6", "copy the last code block"),
        ("click", "“copy” on a message copies it; a code block copies its code; the reasoning title folds it"),
        ("Tab / shift+Tab", "move between the prompt, the conversation and the reasoning titles; Enter on a title "
                            "folds or unfolds it"),
        ("ctrl+p", "command palette: every action, including the reasoning display (auto / always / never)"),
        ("F1", "this help"),
        ("ctrl+q", "quit"),
    ]


def keys_renderable(settings: ChatSettings) -> Table:
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0), expand=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for key, what in key_table(settings):
        table.add_row(key, what)
    return table


LAYOUT = """\
## The screen, top to bottom

- **Header**: hermes-chat, the conversation's title, what answers (in-process and its upstreams, or the proxy's
  address; hidden below 72 columns) and **SIMULATED** when the answers come from the built-in demo, not a real model.
- **Conversation list** on the left (ctrl+b shows/hides it; it starts hidden below 90 columns): search box, then each
  saved conversation with its date, message count and cost.
- **Conversation**: your messages and Hermes' answers, each with "⧉ copy". A long one opens at its end; earlier
  messages are drawn as you scroll up to them (or click "⋯ earlier messages"; ctrl+home: the very start). Above an answer, its reasoning block
  (▶ Reasoning · N tokens: click it, ctrl+t, or Tab to it and Enter, to unfold); under it, its tokens and cost.
- **Controls row**: the reasoning switch (◉ ON / ○ OFF, ctrl+r), the model and upstream (F3), this conversation's
  settings when any is set (temp 0.7 · max 512, F9), the conversation's cost and the team's remaining budget.
- **Prompt**: your message; what you type while a reply streams stays there.
- **Status line**, under the prompt: the state (connecting…, ready, waiting, thinking, answering, done, stopped,
  failed), tokens
  per second, tokens in · out (reasoning), this reply's cost and the context window used.
- **Next turn**, on the status line while you type: what sending would cost, estimated (next ~1,234 in ·
  $0.0012–$0.0050: history, system prompt and message; input alone up to the answer's max tokens or the context
  left; ⚠ in the error colour when it would not fit the context window).
- **Footer**: the keys that work now (a click on one presses it); ctrl+p, the command palette, on the right.
"""


def help_markdown(settings: ChatSettings) -> str:
    modes = "\n".join(f"- **{mode}**: {text}" for mode, text in SHOW_REASONING_HELP.items())
    return (
        LAYOUT + "\n## Live numbers\n\n`~` marks a number still estimated (about four characters a token); it is "
        "exact once the reply ends. The budget is in the warning colour past the team's soft limit (⚠) and in the "
        "error colour when spent; \"a message may reserve $X\" says a message may be refused although money is left."
        "\n\n## Reasoning display (ctrl+p → Reasoning display)\n\n" + modes
        + f"\n\nCurrent: **{settings.show_reasoning}**. Earlier reasoning is never sent back to the model."
    )


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f1,q", "dismiss", "Close")]

    def __init__(self, settings: ChatSettings) -> None:
        super().__init__(classes="dialog-screen")
        self.settings = settings

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help"):
            yield Static("hermes-chat: keys, the screen, the numbers", classes="dialog-title")
            yield Static(keys_renderable(self.settings), id="help-keys")
            yield Markdown(help_markdown(self.settings), id="help-text")
            yield Static("esc close", classes="dialog-help")
