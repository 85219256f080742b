"""The chat's settings: from the ``[chat]`` table of the config, the command line, and choices saved in the store."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

ShowReasoning = Literal["auto", "always", "never"]
SHOW_REASONING_MODES: tuple[ShowReasoning, ...] = ("auto", "always", "never")
SHOW_REASONING_HELP = MappingProxyType({
    "auto": "open while thinking, collapsed when the answer starts",
    "always": "always shown, never collapsed",
    "never": "always hidden",
})


TEMPERATURE_RANGE = (0.0, 2.0)


@dataclass(frozen=True, slots=True)
class ChatParams:
    """A conversation's sampling settings, sent with each of its requests; ``None``: left out (the default)."""

    temperature: float | None = None
    max_tokens: int | None = None

    def summary(self, *, compact: bool = False) -> str:
        """``temp 0.7 · max 512`` (``t0.7 ≤512`` when ``compact``); empty when nothing is set."""
        parts = []
        if self.temperature is not None:
            parts.append(f"{'t' if compact else 'temp '}{self.temperature:g}")
        if self.max_tokens is not None:
            parts.append(f"{'≤' if compact else 'max '}{self.max_tokens:,}")
        return (" " if compact else " · ").join(parts)


NO_PARAMS = ChatParams()


def parse_params(temperature: str, max_tokens: str) -> ChatParams:
    """Read the settings dialog's fields (blank: the default); ``ValueError`` says what is wrong, for the user."""
    temp: float | None = None
    if temperature.strip():
        try:
            temp = float(temperature)
        except ValueError:
            raise ValueError(f"Temperature must be a number from 0 to 2, not {temperature.strip()!r}.") from None
        low, high = TEMPERATURE_RANGE
        if not low <= temp <= high:
            raise ValueError(f"Temperature must be from 0 to 2, not {temp:g}.")
    limit: int | None = None
    if max_tokens.strip():
        try:
            limit = int(max_tokens.strip().replace(",", "").replace("_", ""))
        except ValueError:
            raise ValueError(f"Max tokens must be a whole number, not {max_tokens.strip()!r}.") from None
        if limit < 1:
            raise ValueError("Max tokens must be at least 1.")
    return ChatParams(temp, limit)


@dataclass(frozen=True, slots=True)
class ChatSettings:
    """``model``: the alias for new conversations (``None``: the backend's first). ``reasoning``: the switch at start.

    ``show_reasoning``: ``auto`` opens the reasoning block while thinking and collapses it when the answer starts;
    ``always`` keeps it open; ``never`` hides it. ``newline_key``: the key that inserts a newline in the prompt
    (Shift+Enter always does, where the terminal reports it); Enter sends, unless ``newline_key`` is ``enter``,
    in which case ctrl+j sends.
    """

    model: str | None = None
    reasoning: bool = False
    show_reasoning: ShowReasoning = "auto"
    newline_key: str = "ctrl+j"
    team: str | None = None

    @property
    def send_key(self) -> str:
        return "ctrl+j" if self.newline_key == "enter" else "enter"

    @property
    def newline_keys(self) -> tuple[str, ...]:
        keys = [self.newline_key, "shift+enter"]
        if self.newline_key == "enter":
            keys = ["enter", "shift+enter"]
        return tuple(dict.fromkeys(keys))
