"""The SQLite ledger: wires the connection (on the event loop or its worker thread), group admission and group commit to
the :class:`Ledger` protocol."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from hermes_proxy.ledger.admission import KeyState
from hermes_proxy.ledger.amounts import cost_amount
from hermes_proxy.ledger.backend import LedgerBackend
from hermes_proxy.ledger.migrations import MIGRATIONS_TABLE
from hermes_proxy.ledger.protocol import Clock
from hermes_proxy.ledger.queries import (
    DELETE_HOLD,
    KEY_BY_HASH,
    key_from_row,
    list_keys_query,
    request_from_row,
    requests_query,
)
from hermes_proxy.ledger.records import Admission, Hold, KeyRecord, Progress, RequestRecord, check_settle
from hermes_proxy.ledger.reports import check_spend_args
from hermes_proxy.ledger.spans import Span
from hermes_proxy.ledger.sqlite import statements
from hermes_proxy.ledger.sqlite.groups import GroupAdmission, group_commit
from hermes_proxy.ledger.sqlite.statements import CODEC, execute
from hermes_proxy.ledger.sqlite.worker import SQLiteWorker
from policies.types import TeamPolicy


class SQLiteLedger(LedgerBackend):
    codec = CODEC

    def __init__(
        self, path: str | Path, *, reservation_ttl_s: float = 3600.0, clock: Clock | None = None,
        busy_timeout_ms: int = 10_000,
    ) -> None:
        super().__init__(reservation_ttl_s=reservation_ttl_s, clock=clock)
        self.path = str(path)
        self._worker = SQLiteWorker(self.path, busy_timeout_ms=busy_timeout_ms, clock=self._clock)
        self._admissions = GroupAdmission(self._worker, self.release)
        self._settles = group_commit(self._worker.run_here, self._clock)

    def __repr__(self) -> str:
        return f"SQLiteLedger({self.path!r})"

    @property
    def in_memory(self) -> bool:
        return self._worker.in_memory

    # --- lifecycle ---------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._worker.start()

    async def close(self) -> None:
        await self._settles.drain()  # settles already accepted are committed before closing
        await self._worker.close()

    async def ping(self) -> None:
        await self._worker.run(lambda conn: conn.execute("SELECT 1").fetchone())

    # --- budgets -----------------------------------------------------------------------------------------------------

    async def _admit(
        self, policy: TeamPolicy, key: KeyRecord | None, hold: Hold, moment: datetime, spans: tuple[Span, ...],
        price_keys: tuple[str, ...],
    ) -> Admission:
        return await self._admissions.reserve(policy, key, hold, moment, spans, price_keys)

    async def _checkpoint(self, hold_id: str, progress: Progress, expires_at: datetime) -> bool:
        return await self._worker.run_here(statements.checkpoint, hold_id, progress, expires_at)

    async def _learn_price(self, price_key: str, factor: Decimal, now: datetime) -> Decimal:
        return await self._worker.run_here(statements.learn_price, price_key, factor, now)

    async def price_factors(self) -> dict[str, Decimal]:
        return await self._worker.run_here(statements.price_factors)

    async def settle(self, hold: Hold, record: RequestRecord) -> None:
        """Record the request and drop its hold, durably, before returning (grouped with concurrent settles)."""
        check_settle(record)
        cost = None if record.cost_usd is None else cost_amount(record.cost_usd)
        await self._settles.settle(hold, record, cost)

    async def release(self, hold: Hold) -> None:
        await self._worker.run_here(execute, DELETE_HOLD, (hold.id,))

    async def _measure(
        self, team: str, spans: tuple[Span, ...], key: KeyRecord | None, now: datetime
    ) -> tuple[list[Decimal], Decimal, KeyState | None]:
        # a window with a partial-hour edge sums that hour's raw rows: on the thread, not the event loop
        run = self._worker.run if any(span.edges for span in spans) else self._worker.run_here
        return await run(statements.measure, team, spans, key, now)

    # --- keys --------------------------------------------------------------------------------------------------------

    async def _insert_key(self, record: KeyRecord, key_hash: str) -> None:
        await self._worker.run(statements.insert_key, record, key_hash)

    async def _key_by_hash(self, key_hash: str) -> Sequence[Any] | None:
        return await self._worker.run_here(lambda conn: execute(conn, KEY_BY_HASH, (key_hash,)).fetchone())

    async def list_keys(self, team: str | None = None) -> list[KeyRecord]:
        sql, params = list_keys_query(team)
        rows = await self._worker.run(lambda conn: execute(conn, sql, params).fetchall())
        return [key_from_row(row, CODEC) for row in rows]

    async def revoke_key(self, key_id_or_name: str, team: str | None = None) -> KeyRecord | None:
        return await self._worker.run(statements.revoke_key, key_id_or_name, team, self._clock())

    # --- reports -----------------------------------------------------------------------------------------------------

    async def spend(
        self, *, team: str | None, by: str | None, since: datetime | None, until: datetime | None, tz: str = "UTC",
    ) -> list[dict[str, Any]]:
        check_spend_args(by, since, until, tz)
        return await self._worker.run(statements.spend, team, by, since, until, tz)

    async def requests(self, *, team: str | None = None, limit: int = 100) -> list[RequestRecord]:
        sql, params = requests_query(team, limit)
        rows = await self._worker.run(lambda conn: execute(conn, sql, params).fetchall())
        return [request_from_row(row, CODEC) for row in rows]

    # --- for tests and checks ----------------------------------------------------------------------------------------

    async def migrations(self) -> list[str]:
        """Names of the applied migrations, in order."""
        rows = await self._worker.run(
            lambda conn: conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY applied_at, rowid").fetchall())
        return [row[0] for row in rows]

    async def audit(self) -> dict[str, Any]:
        """Internal consistency: every roll-up equals the SUM over the request rows it summarizes."""
        return await self._worker.run(statements.audit)
