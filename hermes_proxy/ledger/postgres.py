"""The PostgreSQL ledger: several proxy processes share one database and its budgets.

Admission is atomic across processes and grouped within one (``pg_groups``): the reservations that arrive while a
batch is in flight share the next transaction, which first takes the advisory transaction lock
(``pg_advisory_xact_lock``) of each of its teams, in one stable order, then, in a *new* statement (READ COMMITTED gives
each statement a fresh snapshot, so it sees every hold and settle committed before the locks were granted), bills the
teams' expired holds, reads the learned price factors and measures spend and holds; Python decides the reservations
one after the other in arrival order, as sequential admission would, and the admitted holds are inserted in one
statement before the commit. Holds are transient (they expire), so the reserve commit does not wait for the WAL flush
(``synchronous_commit`` off for that transaction only; a lost commit loses the billing with the hold's deletion, and
the hold is billed again later).

Settles are grouped the same way: a batch is ONE statement (data-modifying CTEs): insert each request row once per
``request_id``, add the costs to the team totals, the hourly buckets and the keys (one upsert each, in order), and
delete the holds (locked in id order); one round trip, atomic, durable at commit. When a row already exists as an
``expired`` estimate, a second statement replaces it and moves the roll-ups by the difference. Concurrent settles take
the same row locks in the same order, so they cannot deadlock. Every team's
expired holds are billed at start and every PURGE_EVERY. The statements are in ``pg_statements``. Money is
``NUMERIC(24, 9)``, time ``TIMESTAMPTZ``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from hermes_proxy.errors import LedgerUnavailable
from hermes_proxy.ledger import pg_statements as pg
from hermes_proxy.ledger.admission import KeyState
from hermes_proxy.ledger.amounts import cost_amount, floor_bucket
from hermes_proxy.ledger.backend import LedgerBackend
from hermes_proxy.ledger.batching import GroupCommit
from hermes_proxy.ledger.measure import measure_query, read_measure
from hermes_proxy.ledger.migrations import MIGRATIONS_TABLE, POSTGRES, migrations_table_sql, to_apply
from hermes_proxy.ledger.pg_groups import MAX_BATCH, PgGroupAdmission, PgSettleBatch
from hermes_proxy.ledger.protocol import Clock
from hermes_proxy.ledger.queries import (
    AUDIT,
    CHECKPOINT,
    DELETE_HOLD,
    INSERT_KEY,
    KEY_BY_HASH,
    KEY_NAMES,
    LEARN_PRICE,
    PRICE_FACTORS,
    PURGE_EVERY,
    REVOKE_KEY,
    Codec,
    audit_report,
    key_from_row,
    key_lookup,
    key_name_taken,
    key_to_revoke,
    key_values,
    list_keys_query,
    progress_values,
    request_from_row,
    request_values,
    requests_query,
    revoked,
    spend_query,
)
from hermes_proxy.ledger.records import Admission, Hold, KeyRecord, Progress, RequestRecord, check_settle
from hermes_proxy.ledger.reports import check_spend_args, spend_rows
from hermes_proxy.ledger.spans import Span
from policies.budget import tidy
from policies.types import TeamPolicy

CODEC = Codec(money_out=tidy)
#: the day of ``started_at`` in a zone
LOCAL_DAY = "to_char(started_at AT TIME ZONE {tz}, 'YYYY-MM-DD')"
_CONNECTION_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresError)


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


class PostgresLedger(LedgerBackend):
    codec = CODEC

    def __init__(
        self, url: str, *, reservation_ttl_s: float = 3600.0, clock: Clock | None = None,
        min_connections: int = 1, max_connections: int = 10, connect_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(reservation_ttl_s=reservation_ttl_s, clock=clock)
        self.url = url
        self._min = min_connections
        self._max = max_connections
        self._connect_timeout_s = connect_timeout_s
        self._pool: asyncpg.Pool | None = None
        self._next_purge: datetime | None = None
        self._schema = ""
        self._admissions = PgGroupAdmission(self._conn, self._lock_key, self.release, self._ttl, CODEC)
        self._settles = GroupCommit(PgSettleBatch(self._conn, self._clock, CODEC), self._settle_one,
                                    max_batch=MAX_BATCH)

    def __repr__(self) -> str:
        return f"PostgresLedger({redact(self.url)!r})"

    # --- lifecycle ---------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._pool is not None:
            return
        try:
            pool = await asyncpg.create_pool(
                self.url, min_size=self._min, max_size=self._max, timeout=self._connect_timeout_s,
                command_timeout=60,
            )
        except _CONNECTION_ERRORS as exc:
            raise LedgerUnavailable(
                f"cannot reach the PostgreSQL ledger at {redact(self.url)}: {_reason(exc)} "
                "(check [ledger] url and that the server is running; there is no fallback)"
            ) from None
        try:
            async with pool.acquire() as conn:
                await _migrate(conn)
                self._schema = await conn.fetchval("SELECT current_schema()") or ""
                await conn.fetchval(pg.BILL_EXPIRED, self._clock())
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, _CONNECTION_ERRORS):
                raise LedgerUnavailable(
                    f"cannot prepare the PostgreSQL ledger at {redact(self.url)}: {_reason(exc)}") from None
            raise
        self._pool = pool

    async def close(self) -> None:
        await self._settles.drain()  # settles already accepted are committed before closing
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=10)
            except (TimeoutError, *_CONNECTION_ERRORS):
                pool.terminate()

    async def ping(self) -> None:
        async with self._conn() as conn:
            await conn.fetchval("SELECT 1", timeout=5)

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool
        if pool is None:
            raise LedgerUnavailable("the ledger is not started")
        try:
            async with pool.acquire(timeout=30) as conn:
                yield conn
        except asyncpg.UniqueViolationError:
            raise
        except _CONNECTION_ERRORS as exc:
            raise LedgerUnavailable(f"PostgreSQL ledger {redact(self.url)}: {_reason(exc)}") from exc

    def _lock_key(self, team: str) -> int:
        """The team's advisory lock: serializes admissions of one team across every process on this database.

        An advisory lock rather than a row lock: settles update the team's roll-up rows and wait for their WAL flush
        while holding those row locks, and admissions must not queue behind that (settles need no admission lock:
        they only move money from reserved to spent). Keyed by schema and team; a collision of the 64-bit hash would
        only serialize two teams needlessly.
        """
        digest = hashlib.blake2b(f"hermes-ledger\0{self._schema}\0{team}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)

    # --- budgets -----------------------------------------------------------------------------------------------------

    async def _admit(
        self, policy: TeamPolicy, key: KeyRecord | None, hold: Hold, moment: datetime, spans: tuple[Span, ...],
        price_keys: tuple[str, ...],
    ) -> Admission:
        admission = await self._admissions.reserve(policy, key, hold, moment, spans, price_keys)
        if self._next_purge is None or moment >= self._next_purge:
            self._next_purge = moment + PURGE_EVERY
            with contextlib.suppress(LedgerUnavailable):
                async with self._conn() as conn:
                    await conn.fetchval(pg.BILL_EXPIRED, moment)
        return admission

    async def settle(self, hold: Hold, record: RequestRecord) -> None:
        """Record the request and drop its hold, durably, before returning (grouped with concurrent settles)."""
        check_settle(record)
        await self._settles.settle(hold, record, None if record.cost_usd is None else cost_amount(record.cost_usd))

    async def _settle_one(self, hold: Hold, record: RequestRecord, cost: Decimal | None) -> None:
        r = record
        values = request_values(r, cost, hold.amount_usd, self._clock(), CODEC)
        async with self._conn() as conn:
            inserted = await conn.fetchval(pg.SETTLE, *values, floor_bucket(r.started_at), hold.id)
            if not inserted:  # a retry, or the hold expired and was billed: the precise record replaces the estimate
                await conn.fetchval(pg.REPLACE_ESTIMATE, *values)

    async def _checkpoint(self, hold_id: str, progress: Progress, expires_at: datetime) -> bool:
        async with self._conn() as conn:
            status = await conn.execute(CHECKPOINT, *progress_values(progress, CODEC), expires_at, hold_id)
        return bool(status.endswith(" 1"))

    async def _learn_price(self, price_key: str, factor: Decimal, now: datetime) -> Decimal:
        async with self._conn() as conn:
            return tidy(await conn.fetchval(LEARN_PRICE, price_key, factor, now))

    async def price_factors(self) -> dict[str, Decimal]:
        async with self._conn() as conn:
            return {row[0]: tidy(row[1]) for row in await conn.fetch(PRICE_FACTORS)}

    async def release(self, hold: Hold) -> None:
        async with self._conn() as conn:
            await conn.execute(DELETE_HOLD, hold.id)

    async def _measure(
        self, team: str, spans: tuple[Span, ...], key: KeyRecord | None, now: datetime
    ) -> tuple[list[Decimal], Decimal, KeyState | None]:
        sql, params = measure_query(team, spans, key.id if key else None, now, when=_same)
        async with self._conn() as conn:
            row = await conn.fetchrow(sql, *params)
        return read_measure(row, spans, key, tidy)

    # --- keys --------------------------------------------------------------------------------------------------------

    async def _insert_key(self, record: KeyRecord, key_hash: str) -> None:
        try:
            async with self._conn() as conn:
                await conn.execute(INSERT_KEY, *key_values(record, key_hash, CODEC))
        except asyncpg.UniqueViolationError:
            raise key_name_taken(record) from None

    async def _key_by_hash(self, key_hash: str) -> Sequence[Any] | None:
        async with self._conn() as conn:
            row: Sequence[Any] | None = await conn.fetchrow(KEY_BY_HASH, key_hash)
        return row

    async def list_keys(self, team: str | None = None) -> list[KeyRecord]:
        sql, params = list_keys_query(team)
        async with self._conn() as conn:
            rows = await conn.fetch(sql, *params)
        return [key_from_row(row, CODEC) for row in rows]

    async def revoke_key(self, key_id_or_name: str, team: str | None = None) -> KeyRecord | None:
        now = self._clock()
        sql, params = key_lookup(key_id_or_name, team)
        async with self._conn() as conn, conn.transaction():
            record = key_to_revoke(await conn.fetch(sql + " FOR UPDATE", *params), key_id_or_name, CODEC)
            if record is None or record.revoked_at is not None:
                return record
            await conn.execute(REVOKE_KEY, now, record.id)
        return revoked(record, now)

    # --- reports -----------------------------------------------------------------------------------------------------

    async def spend(
        self, *, team: str | None, by: str | None, since: datetime | None, until: datetime | None, tz: str = "UTC",
    ) -> list[dict[str, Any]]:
        check_spend_args(by, since, until, tz)
        sql, params = spend_query(by, team, since, until, tz, codec=CODEC, local_day=LOCAL_DAY)
        async with self._conn() as conn:
            rows = await conn.fetch(sql, *params)
            names = {r["id"]: r["name"] for r in await conn.fetch(KEY_NAMES)} if by == "key" else None
        return spend_rows(by, rows, names, tidy)

    async def requests(self, *, team: str | None = None, limit: int = 100) -> list[RequestRecord]:
        sql, params = requests_query(team, limit)
        async with self._conn() as conn:
            rows = await conn.fetch(sql, *params)
        return [request_from_row(row, CODEC) for row in rows]

    # --- for tests and checks ----------------------------------------------------------------------------------------

    async def migrations(self) -> list[str]:
        """Names of the applied migrations, in order."""
        async with self._conn() as conn:
            rows = await conn.fetch(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY applied_at, name")
        return [row["name"] for row in rows]

    async def audit(self) -> dict[str, Any]:
        """Internal consistency: every roll-up equals the SUM over the request rows it summarizes."""
        async with self._conn() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            results = [await conn.fetch(sql) for sql in AUDIT]
        return audit_report(results, CODEC)


# --- helpers ---------------------------------------------------------------------------------------------------------


async def _migrate(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        # one migrator at a time per schema, however many processes start together
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(COALESCE(current_schema(), '') || '.hermes_migrations'))")
        if await conn.fetchval("SELECT current_schema()") is None:
            raise LedgerUnavailable("the PostgreSQL search_path names no existing schema to create the ledger in")
        await conn.execute(migrations_table_sql(POSTGRES))
        applied = {row["name"] for row in await conn.fetch(f"SELECT name FROM {MIGRATIONS_TABLE}")}
        for name, statements in to_apply(applied, POSTGRES):
            for statement in statements:
                await conn.execute(statement)
            await conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES ($1, now())", name)


def _same(moment: datetime) -> datetime:
    return moment


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
