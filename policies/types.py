"""Team policy types: plain frozen data, built from config by ``hermes_proxy.config`` and read by the pure rules here."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

Window = Literal["daily", "weekly", "monthly", "total"]
WINDOWS: tuple[Window, ...] = ("daily", "weekly", "monthly", "total")

ReasoningRule = Literal["allow", "deny", "force"]
REASONING_RULES: tuple[str, ...] = ("allow", "deny", "force", "on", "off")


@dataclass(frozen=True, slots=True)
class BudgetRule:
    """A spend limit over one window. ``limit_usd`` is hard (admission refuses past it); the soft limit only warns."""

    window: Window
    limit_usd: Decimal
    soft_limit_usd: Decimal | None = None


@dataclass(frozen=True, slots=True)
class RateLimitRule:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


PromptLimitMode = Literal["refuse", "warn"]


AlertFormat = Literal["json", "slack"]
ALERT_FORMATS: tuple[AlertFormat, ...] = ("json", "slack")


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One budget-alert webhook of a team: where, in which body shape, and at which percentages of each window's hard
    limit (the soft limit, the first refusal and a route's price rise are always sent)."""

    url: str
    format: AlertFormat = "json"
    at_percent: tuple[int, ...] = (50, 80, 100)
    timeout_s: float = 10.0
    #: the first retry waits this long, each next one twice as long (at most ten minutes)
    retry_backoff_s: float = 5.0


@dataclass(frozen=True, slots=True)
class TeamPolicy:
    """What one team may do and spend.

    ``models`` is ``None`` when every configured model is allowed. ``reasoning`` is the rule; ``reasoning_default`` is the
    team's default when the request does not say (``None``: fall through to the model's default).
    """

    name: str
    budgets: tuple[BudgetRule, ...] = ()
    models: tuple[str, ...] | None = None
    reasoning: ReasoningRule = "allow"
    reasoning_default: bool | None = None
    max_tokens: int | None = None
    timezone: str = "UTC"
    rate_limits: RateLimitRule | None = None
    key_rate_limits: RateLimitRule | None = None
    key_limit_usd: Decimal | None = None
    #: the longest prompt (tokens, as counted) a request may send; ``None``: only the model's context window limits it
    max_prompt_tokens: int | None = None
    #: past ``max_prompt_tokens``: ``refuse`` with a 400, or ``warn`` in a response header and serve it
    prompt_limit: PromptLimitMode = "refuse"
    #: budget-alert webhooks (none: no alert is ever looked for)
    alerts: tuple[AlertRule, ...] = ()
    #: the response cache may keep and replay this team's answers (``[cache]``); off unless the team's table says so
    cache: bool = False
