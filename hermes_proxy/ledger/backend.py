"""What the SQLite and PostgreSQL ledgers do the same way around their store.

:class:`LedgerBackend` holds the clock, the reservation TTL and the span cache, and implements ``reserve`` (the hold,
the no-limit shortcut, the spans), ``checkpoint``, ``learn_price``, ``budget_status``, ``create_key`` and ``verify_key``
over small store operations each backend supplies (admit a hold, checkpoint it, learn a price, measure, insert a key,
find a key by its hash).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hermes_proxy import keys as keyutil
from hermes_proxy.ledger.admission import KeyState, needs_hold, usages_for
from hermes_proxy.ledger.amounts import price_factor
from hermes_proxy.ledger.protocol import Clock
from hermes_proxy.ledger.queries import Codec, key_from_row
from hermes_proxy.ledger.records import (
    Admission,
    Hold,
    HoldInfo,
    KeyRecord,
    Progress,
    check_price_keys,
    check_progress,
    new_hold,
    new_key,
)
from hermes_proxy.ledger.spans import Span, SpanCache
from policies.budget import BudgetStatus, now_utc
from policies.types import TeamPolicy
from policies.windows import require_aware


class LedgerBackend(ABC):
    codec: Codec

    def __init__(self, *, reservation_ttl_s: float, clock: Clock | None) -> None:
        self._ttl = timedelta(seconds=reservation_ttl_s)
        self._clock = clock or now_utc
        self._spans = SpanCache()

    def _now(self, now: datetime | None) -> datetime:
        return require_aware(now if now is not None else self._clock(), "now")

    # --- what each store supplies ------------------------------------------------------------------------------------

    @abstractmethod
    async def _admit(
        self, policy: TeamPolicy, key: KeyRecord | None, hold: Hold, moment: datetime, spans: tuple[Span, ...],
        price_keys: tuple[str, ...],
    ) -> Admission:
        """In one transaction: bill the team's expired holds, scale ``hold`` by the highest learned factor of
        ``price_keys``, measure, decide and store it; raise the refusal (``BudgetExceeded``, a revoked key)."""

    @abstractmethod
    async def _checkpoint(self, hold_id: str, progress: Progress, expires_at: datetime) -> bool:
        """Store the progress and the new expiry on the hold; False when it no longer exists."""

    @abstractmethod
    async def _learn_price(self, price_key: str, factor: Decimal, now: datetime) -> Decimal:
        """Store max(stored, factor) and return the stored factor."""

    @abstractmethod
    async def price_factors(self) -> dict[str, Decimal]:
        """Every learned factor by price key."""

    @abstractmethod
    async def _measure(
        self, team: str, spans: tuple[Span, ...], key: KeyRecord | None, now: datetime
    ) -> tuple[list[Decimal], Decimal, KeyState | None]:
        """Spend per span, the team's holds, and the key's state, in one snapshot."""

    @abstractmethod
    async def _insert_key(self, record: KeyRecord, key_hash: str) -> None:
        """Store a new key; raise ``InvalidRequest`` when the team has a live key of that name."""

    @abstractmethod
    async def _key_by_hash(self, key_hash: str) -> Sequence[Any] | None:
        """The row (KEY_COLUMNS, then key_hash) of the key with this hash."""

    # --- shared operations -------------------------------------------------------------------------------------------

    async def reserve(
        self, policy: TeamPolicy, key: KeyRecord | None, amount_usd: Decimal, *, now: datetime | None = None,
        info: HoldInfo | None = None, progress: Progress | None = None, price_keys: Sequence[str] = (),
    ) -> Admission:
        moment = self._now(now)
        keys = check_price_keys(price_keys)
        hold = new_hold(policy, key, amount_usd, moment, self._ttl, info, progress)
        if info is None and not needs_hold(policy, key):  # no limit applies and nothing to bill: no I/O
            return Admission(hold, (), f"team '{policy.name}' has no spend limit")
        return await self._admit(policy, key, hold, moment, self._spans.plan(policy, moment), keys)

    async def checkpoint(self, hold: Hold, progress: Progress) -> Hold:
        checked = check_progress(progress)
        assert checked is not None
        expires_at = self._now(None) + self._ttl
        if not await self._checkpoint(hold.id, checked, expires_at):
            return hold  # settled, released, or expired and billed meanwhile: nothing to extend
        return replace(hold, expires_at=expires_at, progress=checked)

    async def learn_price(self, price_key: str, factor: Decimal) -> Decimal:
        check_price_keys([price_key])
        # a price at or below the configured one is stored as 1: the route's price is then known (confirmed), and
        # only a factor above 1 changes what reservations hold
        stored = max(price_factor(factor), Decimal(1))
        return await self._learn_price(price_key, stored, self._clock())

    async def budget_status(
        self, policy: TeamPolicy, *, now: datetime | None = None, key: KeyRecord | None = None
    ) -> tuple[BudgetStatus, ...]:
        moment = self._now(now)
        spans = self._spans.plan(policy, moment)
        spent, reserved, key_state = await self._measure(policy.name, spans, key, moment)
        return tuple(u.status() for u in usages_for(spans, spent, reserved, key_state, policy))

    async def create_key(
        self, team: str, name: str | None = None, limit_usd: Decimal | None = None
    ) -> tuple[str, KeyRecord]:
        plaintext, record, key_hash = new_key(team, name, limit_usd, self._clock())
        await self._insert_key(record, key_hash)
        return plaintext, record

    async def verify_key(self, plaintext: str) -> KeyRecord | None:
        if not isinstance(plaintext, str) or not keyutil.looks_like_key(plaintext):
            return None
        candidate = keyutil.hash_key(plaintext)
        row = await self._key_by_hash(candidate)
        if row is None or not keyutil.hashes_match(row[7], candidate):
            return None
        record = key_from_row(row, self.codec)
        return record if record.revoked_at is None else None
