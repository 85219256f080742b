"""What a team may ask for, pure: is the model allowed, how many completion tokens may it request.

Each function returns a decision that explains itself (which rule, which numbers); the caller raises its own error from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from policies.types import TeamPolicy

MaxTokensSource = Literal["request", "policy", "context"]


@dataclass(frozen=True, slots=True)
class ModelDecision:
    allowed: bool
    model: str
    rule: str  # "all models" or "teams.<name>.models"
    explanation: str


@dataclass(frozen=True, slots=True)
class MaxTokensDecision:
    """``max_tokens`` to send upstream (and to reserve for), where it came from, and whether the request fits at all."""

    max_tokens: int
    source: MaxTokensSource
    capped: bool
    fits: bool
    explanation: str


def check_model(policy: TeamPolicy, alias: str) -> ModelDecision:
    if policy.models is None:
        return ModelDecision(True, alias, "all models", f"team '{policy.name}' may use every configured model")
    rule = f"teams.{policy.name}.models"
    if alias in policy.models:
        return ModelDecision(True, alias, rule, f"team '{policy.name}' may use '{alias}' ({rule})")
    allowed = ", ".join(policy.models) or "none"
    return ModelDecision(
        False, alias, rule, f"team '{policy.name}' may not use model '{alias}' (its policy allows: {allowed})"
    )


def cap_max_tokens(
    policy: TeamPolicy, requested: int | None, *, prompt_tokens: int, context_window: int
) -> MaxTokensDecision:
    """The completion budget of a request.

    A client value is capped at the team's ``max_tokens``; with no client value the team's cap is injected, or else all
    the room left in the context window (so the worst-case reservation is always bounded). ``fits`` is false when the
    prompt plus the completion cannot fit the context window.
    """
    cap = policy.max_tokens
    room = context_window - prompt_tokens
    source: MaxTokensSource
    if requested is not None:
        if requested < 0:
            raise ValueError(f"max_tokens must be >= 0, got {requested}")
        if cap is not None and requested > cap:
            value, source, capped = cap, "policy", True
            text = f"max_tokens {requested} capped to {cap} by teams.{policy.name}.max_tokens"
        else:
            value, source, capped = requested, "request", False
            text = f"max_tokens {requested} as requested"
        fits = prompt_tokens + value <= context_window
    elif cap is not None and cap < room:
        value, source, capped, fits = cap, "policy", False, True
        text = f"max_tokens {cap} injected from teams.{policy.name}.max_tokens"
    else:
        value, capped, fits = max(room, 0), False, room >= 1
        source = "context"
        text = f"max_tokens {max(room, 0)}: the room left in the {context_window}-token context after {prompt_tokens}"
    if not fits:
        text += (f"; does not fit: {prompt_tokens} prompt + {value} completion tokens > "
                 f"{context_window}-token context window")
    return MaxTokensDecision(value, source, capped, fits, text)


@dataclass(frozen=True, slots=True)
class PromptLimitDecision:
    """Whether a prompt is within the team's ``max_prompt_tokens``; ``explanation`` names the numbers and the rule."""

    allowed: bool
    over: bool
    explanation: str


def check_prompt_tokens(policy: TeamPolicy, prompt_tokens: int) -> PromptLimitDecision:
    """A prompt over ``teams.<name>.max_prompt_tokens`` is refused (``prompt_limit = "refuse"``) or allowed with a
    warning (``"warn"``). Without a limit every prompt is allowed (the context window still applies)."""
    limit = policy.max_prompt_tokens
    if limit is None or prompt_tokens <= limit:
        return PromptLimitDecision(True, False, "")
    rule = f"teams.{policy.name}.max_prompt_tokens"
    text = (f"the prompt is {prompt_tokens:,} tokens; team '{policy.name}' allows {limit:,} ({rule}): "
            "send less context (fewer or shorter messages, documents cut to what the question needs)")
    return PromptLimitDecision(policy.prompt_limit == "warn", True, text)
