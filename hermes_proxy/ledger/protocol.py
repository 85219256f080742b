"""The :class:`Ledger` protocol the gateway, the commands and the chat call; SQLite and PostgreSQL implement it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from hermes_proxy.ledger.records import Admission, Hold, HoldInfo, KeyRecord, Progress, RequestRecord
from policies.budget import BudgetStatus
from policies.types import TeamPolicy

Clock = Callable[[], datetime]


@runtime_checkable
class Ledger(Protocol):
    async def start(self) -> None:
        """Connect and run migrations; raise ``LedgerUnavailable`` when the store cannot be reached."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """For readiness probes: raise ``LedgerUnavailable`` when the store does not answer."""

    async def reserve(
        self, policy: TeamPolicy, key: KeyRecord | None, amount_usd: Decimal, *, now: datetime | None = None,
        info: HoldInfo | None = None, progress: Progress | None = None, price_keys: Sequence[str] = (),
    ) -> Admission:
        """Hold ``amount_usd`` for one request, atomically across tasks and processes; raise ``BudgetExceeded``
        when any budget window (or the key's own limit) would be passed.

        In the same transaction: the team's expired holds are billed (see :meth:`checkpoint`), and the amount held is
        ``amount_usd * max(1, highest learned factor of price_keys)`` (:meth:`learn_price`; every replica reads the
        same factors); ``Admission.price_factor`` is the factor applied and ``hold.amount_usd`` the amount held.
        ``info`` (what the request is; its ``request_id`` must be the one the settle will use) and ``progress``
        (its usage so far) are stored on the hold, so that the hold is billed if it expires. Without ``info``, a team
        with no limit gets a hold that is never stored (no I/O, no factor applied)."""
        ...

    async def checkpoint(self, hold: Hold, progress: Progress) -> Hold:
        """Store a running request's usage so far on its hold and extend the hold to now + the reservation TTL;
        returns the hold with its new ``expires_at``. A hold that no longer exists (settled, released, expired and
        billed) is left alone and returned unchanged: never an error for that. ``LedgerUnavailable`` only when the
        store cannot be reached.

        When a hold carrying ``info`` expires (its process died, or stopped checkpointing), the next admission of its
        team or the periodic purge deletes it and writes its request row in the same transaction: status
        ``expired``, ``estimated``, tokens and cost of the last progress (cost None: unknown), latency = expiry -
        started_at, counted in spend and budgets. A row already there for that ``request_id`` wins."""
        ...

    async def settle(self, hold: Hold, record: RequestRecord) -> None:
        """Insert the request row (once per ``request_id``) and drop its hold, in one durable transaction.

        When the hold expired and was billed as an ``expired`` estimate, the record replaces that row (precise wins
        over estimate) and the roll-ups move by the difference, exactly once; settling the same record again changes
        nothing. ``status`` ``expired`` is the ledger's own and refused here (``ValueError``)."""

    async def release(self, hold: Hold) -> None:
        """Drop a hold without a row (an error before any token)."""

    async def learn_price(self, price_key: str, factor: Decimal) -> Decimal:
        """Remember that ``price_key`` (a route's price) costs ``factor`` times the configured price: the ledger keeps
        the highest factor seen (rounded up to 1e-9, at least 1), shared by every process on the store, and returns it.
        A factor <= 1 is stored as 1: the route's price is then confirmed as configured."""
        ...

    async def price_factors(self) -> dict[str, Decimal]:
        """Every learned factor by price key."""
        ...

    async def budget_status(
        self, policy: TeamPolicy, *, now: datetime | None = None, key: KeyRecord | None = None
    ) -> tuple[BudgetStatus, ...]: ...

    async def create_key(
        self, team: str, name: str | None = None, limit_usd: Decimal | None = None
    ) -> tuple[str, KeyRecord]: ...

    async def verify_key(self, plaintext: str) -> KeyRecord | None: ...

    async def list_keys(self, team: str | None = None) -> list[KeyRecord]: ...

    async def revoke_key(self, key_id_or_name: str, team: str | None = None) -> KeyRecord | None: ...

    async def spend(
        self,
        *,
        team: str | None,
        by: str | None,
        since: datetime | None,
        until: datetime | None,
        tz: str = "UTC",
    ) -> list[dict[str, Any]]: ...

    async def requests(self, *, team: str | None = None, limit: int = 100) -> list[RequestRecord]: ...
