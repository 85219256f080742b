"""The ledger's records: keys, holds, admissions and settled requests, with the checks and constructors both
backends use."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hermes_proxy import keys as keyutil
from hermes_proxy.ledger.amounts import cost_amount, hold_amount
from hermes_proxy.money import usd_text
from policies.budget import BudgetStatus, soft_warning, tightest_remaining
from policies.types import TeamPolicy
from policies.windows import require_aware

#: how a request can end, checked when it is settled; rows already stored are read back whatever their status says.
#: ``expired`` is written by the ledger only: a hold that carried :class:`HoldInfo` and expired, billed as an estimate
EXPIRED = "expired"
#: a cache hit: served from the response cache, billed its charge (see hermes_proxy.pipeline.cached)
CACHED = "cached"
STATUSES: tuple[str, ...] = ("ok", "upstream_error", "cancelled", "error", EXPIRED, CACHED)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    team: str
    name: str
    prefix: str
    limit_usd: Decimal | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "object": "api_key", "team": self.team, "name": self.name, "prefix": self.prefix,
            "limit_usd": None if self.limit_usd is None else usd_text(self.limit_usd),
            "created_at": self.created_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class HoldInfo:
    """What a hold is for: enough to write the request row when the hold expires before its settle.

    ``request_id`` must be the id the real settle will use: the later, precise record replaces the estimate."""

    request_id: str
    key_name: str | None
    model: str
    route: str
    reasoning: bool
    started_at: datetime


@dataclass(frozen=True, slots=True)
class Progress:
    """A request's running usage so far (cumulative); ``cost_usd`` None: not known (unpriced route)."""

    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal | None


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation: ``amount_usd`` held for one request until it settles, is released, or ``expires_at`` passes.

    ``amount_usd`` is what is actually held (after any learned price factor); ``learned_price`` says a learned factor
    above 1 was applied. With ``info``, an expired hold is billed as an ``expired`` request from its last
    ``progress``."""

    id: str
    team: str
    key_id: str | None
    amount_usd: Decimal
    expires_at: datetime
    info: HoldInfo | None = None
    progress: Progress | None = None
    learned_price: bool = False


@dataclass(frozen=True, slots=True)
class Admission:
    hold: Hold
    budgets: tuple[BudgetStatus, ...]  # status AFTER this reservation
    explanation: str = ""
    #: the learned price factor applied to the amount asked (1: none); ``hold.amount_usd`` is the amount held
    price_factor: Decimal = Decimal(1)

    @property
    def remaining_usd(self) -> Decimal | None:
        """The tightest limit's remaining budget (``None`` when no limit applies)."""
        return tightest_remaining(self.budgets)

    @property
    def warning(self) -> str | None:
        """Plain-ASCII text for ``x-hermes-budget-warning`` when a soft limit is passed."""
        return soft_warning(self.budgets)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    request_id: str
    started_at: datetime
    team: str
    key_id: str | None
    key_name: str | None
    model: str
    route: str
    reasoning: bool
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal | None  # None: unknown cost (unpriced route), never stored as 0
    estimated: bool
    status: str  # one of STATUSES
    latency_ms: float
    ttft_ms: float | None
    #: its reservation used a learned price factor, or it revealed a price above the configured one
    learned_price: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.request_id, "started_at": self.started_at.isoformat(), "team": self.team,
            "key_id": self.key_id, "key_name": self.key_name, "model": self.model, "route": self.route,
            "reasoning": self.reasoning, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": None if self.cost_usd is None else usd_text(self.cost_usd), "estimated": self.estimated,
            "status": self.status, "latency_ms": self.latency_ms, "ttft_ms": self.ttft_ms,
            "learned_price": self.learned_price,
        }


def check_record(record: RequestRecord) -> None:
    if record.status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {record.status!r}")
    for name in ("prompt_tokens", "completion_tokens", "reasoning_tokens"):
        if getattr(record, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(record, name)}")
    if not record.request_id:
        raise ValueError("request_id is required")
    require_aware(record.started_at, "started_at")


def check_settle(record: RequestRecord) -> None:
    """A record ``settle`` accepts: ``expired`` rows are the ledger's own estimates, never settled."""
    check_record(record)
    if record.status == EXPIRED:
        raise ValueError(f"status {EXPIRED!r} is written by the ledger only (a hold that expired)")


def check_progress(progress: Progress | None) -> Progress | None:
    """``progress`` with its cost as stored (rounded to the nano-dollar); negative counts are an error."""
    if progress is None:
        return None
    for name in ("prompt_tokens", "completion_tokens", "reasoning_tokens"):
        value = getattr(progress, name)
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"progress {name} must be an int >= 0, got {value!r}")
    cost = None if progress.cost_usd is None else cost_amount(progress.cost_usd)
    return Progress(progress.prompt_tokens, progress.completion_tokens, progress.reasoning_tokens, cost)


def check_info(info: HoldInfo | None) -> None:
    if info is not None:
        if not info.request_id:
            raise ValueError("hold info needs a request_id")
        require_aware(info.started_at, "started_at")


def check_price_keys(price_keys: Sequence[str]) -> tuple[str, ...]:
    if isinstance(price_keys, str):
        raise TypeError("price_keys is a sequence of keys, not one string")
    keys = tuple(dict.fromkeys(price_keys))
    if not all(isinstance(k, str) and k for k in keys):
        raise ValueError("price keys must be non-empty strings")
    return keys


def new_key(team: str, name: str | None, limit_usd: Decimal | None, now: datetime) -> tuple[str, KeyRecord, str]:
    """A new key: (plaintext, its record, the hash to store). The plaintext is shown once and never stored."""
    keyutil.check_name(name)
    limit = keyutil.parse_usd(limit_usd)
    plaintext = keyutil.generate_key()
    key_id = keyutil.new_key_id()
    record = KeyRecord(key_id, team, name or key_id, keyutil.display_prefix(plaintext), limit, now, None)
    return plaintext, record, keyutil.hash_key(plaintext)


def new_hold(policy: TeamPolicy, key: KeyRecord | None, amount_usd: Decimal, moment: datetime,
             ttl: timedelta, info: HoldInfo | None = None, progress: Progress | None = None) -> Hold:
    """The reservation a request would take (rounded up, never under-reserving), expiring after ``ttl``."""
    if key is not None and key.team != policy.name:
        raise ValueError(f"key {key.id} belongs to team {key.team!r}, not {policy.name!r}")
    check_info(info)
    return Hold(f"hold_{os.urandom(16).hex()}", policy.name, key.id if key else None, hold_amount(amount_usd),
                moment + ttl, info, check_progress(progress))
