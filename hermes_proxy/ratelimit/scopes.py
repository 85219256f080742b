"""Which limits apply to a request (the team's, the key's), and what one scope's counters look like after an admit."""

from __future__ import annotations

from dataclasses import dataclass, field

from policies.types import RateLimitRule, TeamPolicy


@dataclass(frozen=True, slots=True)
class Scope:
    """One set of counters: the team's, or one key's."""

    ident: tuple[str, ...]
    label: str
    rule: RateLimitRule

    @property
    def rpm(self) -> int | None:
        return self.rule.requests_per_minute

    @property
    def tpm(self) -> int | None:
        return self.rule.tokens_per_minute


def _limited(rule: RateLimitRule | None) -> bool:
    return rule is not None and (rule.requests_per_minute is not None or rule.tokens_per_minute is not None)


def scopes_for(team: TeamPolicy, key_id: str | None) -> list[Scope]:
    """The team's scope (when it has limits), then the key's (when keys have limits and a key was used)."""
    scopes: list[Scope] = []
    if _limited(team.rate_limits):
        assert team.rate_limits is not None
        scopes.append(Scope(("team", team.name), f"team '{team.name}'", team.rate_limits))
    if key_id is not None and _limited(team.key_rate_limits):
        assert team.key_rate_limits is not None
        scopes.append(Scope(("key", team.name, key_id), f"key '{key_id}' of team '{team.name}'",
                            team.key_rate_limits))
    return scopes


@dataclass(slots=True)
class ScopeState:
    """What one scope looks like after an admit (after counting if admitted, before if refused)."""

    scope: Scope
    requests: int = 0
    requests_reset_s: float = 0.0
    tokens: int = 0
    tokens_reset_s: float = 0.0
    #: (kind, exact seconds until admissible) for each dimension that refused
    refusals: list[tuple[str, float]] = field(default_factory=list)
