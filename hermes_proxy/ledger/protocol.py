"""The :class:`Ledger` protocol the gateway, the commands and the chat call; SQLite and PostgreSQL implement it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from hermes_proxy.ledger.records import Admission, Hold, KeyRecord, RequestRecord
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
        self, policy: TeamPolicy, key: KeyRecord | None, amount_usd: Decimal, *, now: datetime | None = None
    ) -> Admission:
        """Hold ``amount_usd`` for one request, atomically across tasks and processes; raise ``BudgetExceeded``
        when any budget window (or the key's own limit) would be passed."""
        ...

    async def settle(self, hold: Hold, record: RequestRecord) -> None:
        """Insert the request row (once per ``request_id``) and drop its hold, in one durable transaction."""

    async def release(self, hold: Hold) -> None:
        """Drop a hold without a row (an error before any token)."""

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
