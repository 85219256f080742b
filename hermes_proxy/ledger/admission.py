"""Admission: pair what was measured with each budget, decide, and refuse with the error the client sees."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from hermes_proxy.errors import AuthenticationError, BudgetExceeded
from hermes_proxy.ledger.records import KeyRecord
from hermes_proxy.ledger.spans import Span
from hermes_proxy.money import usd_text
from policies.budget import KEY_WINDOW, Decision, Usage, decide, effective_key_limit
from policies.types import TeamPolicy


@dataclass(frozen=True, slots=True)
class KeyState:
    """A key as the ledger knows it inside the reserve transaction."""

    id: str
    name: str
    limit_usd: Decimal | None
    spent_usd: Decimal
    reserved_usd: Decimal
    revoked: bool


def usages_for(
    spans: Sequence[Span], spent: Sequence[Decimal], reserved: Decimal, key: KeyState | None, policy: TeamPolicy
) -> list[Usage]:
    """Pair each window with what was measured; every hold counts in every window (it happens now)."""
    usages = [
        Usage(span.rule.window, span.rule.limit_usd, amount, reserved, span.rule.soft_limit_usd, span.end)
        for span, amount in zip(spans, spent, strict=True)
    ]
    if key is not None:
        limit = effective_key_limit(key.limit_usd, policy.key_limit_usd)
        if limit is not None:
            usages.append(Usage(KEY_WINDOW, limit, key.spent_usd, key.reserved_usd))
    return usages


def admit(
    policy: TeamPolicy, key: KeyState | None, amount: Decimal, usages: Sequence[Usage]
) -> Decision:
    """The pure decision, or the error the client sees."""
    if key is not None and key.revoked:
        raise AuthenticationError("Incorrect API key provided (revoked).")
    decision = decide(usages, amount, team=policy.name, key_name=key.name if key else None, tz=policy.timezone)
    if not decision.allowed:
        refused = next(b for b in decision.budgets if b.window == decision.rule)
        headers = {
            "x-hermes-budget-remaining-usd": usd_text(refused.remaining_usd),
            "x-hermes-budget-window": refused.window,
        }
        if refused.resets_at is not None:
            headers["x-hermes-budget-resets-at"] = refused.resets_at.isoformat()
        raise BudgetExceeded(decision.explanation, headers=headers)
    return decision


def needs_hold(policy: TeamPolicy, key: KeyRecord | None) -> bool:
    """A reservation only matters when some limit applies; otherwise reserve does no I/O."""
    if policy.budgets:
        return True
    return key is not None and effective_key_limit(key.limit_usd, policy.key_limit_usd) is not None
