"""Group admission and group commit on PostgreSQL: the reservations (and the settles) that arrive while a batch is in
flight share the next transaction, one per batch and per process.

A batch of admissions takes the advisory locks of all its teams in one stable order (by lock key, so that two
processes cannot deadlock), then runs ONE statement that bills each team's expired holds, reads the learned price
factors and measures every (team, windows, key) of the batch. Python then decides the reservations one after the other
in arrival order, each seeing what sequential admission would have shown it: the holds admitted before it in the batch,
the expired holds billed by then (a hold that expires between two admissions of the batch counts as held for the first
and billed for the second), its own windows and its own moment. The admitted holds are inserted in one statement and
the transaction commits: the same decisions as one transaction each, at four round trips per batch. A batch never
spans a reservation TTL, so no hold of a batch can expire within it.

A batch of settles is ONE statement (``SETTLE_BATCH``); a record whose hold expired and was billed then replaces that
estimate. When a batch fails, its settles are retried one by one, so one bad settle loses no other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from hermes_proxy.errors import HermesError
from hermes_proxy.ledger import pg_statements as pg
from hermes_proxy.ledger.admission import admit, usages_for
from hermes_proxy.ledger.amounts import scaled_hold
from hermes_proxy.ledger.batching import Settle, deliver_admissions, resolve
from hermes_proxy.ledger.measure import read_measure
from hermes_proxy.ledger.queries import Codec, hold_values, request_values
from hermes_proxy.ledger.records import Admission, Hold, KeyRecord
from hermes_proxy.ledger.spans import Span
from policies.budget import tidy
from policies.types import TeamPolicy

#: a connection from the ledger's pool (errors mapped to LedgerUnavailable)
Connect = Callable[[], contextlib.AbstractAsyncContextManager[asyncpg.Connection]]
#: the most reservations or settles one transaction takes
MAX_BATCH = 256
ONE = Decimal(1)

Pending = tuple[TeamPolicy, KeyRecord | None, Hold, datetime, tuple[Span, ...], tuple[str, ...],
                "asyncio.Future[Admission]"]
#: a deleted (expired) hold as admission_batch returns it: team, key id, amount, expires_at, started_at, billed cost
Deleted = tuple[str, str | None, Decimal, datetime, datetime | None, Decimal | None]


class PgGroupAdmission:
    """Reservations waiting while a batch is in flight are decided in the next transaction (see the module)."""

    def __init__(
        self, connect: Connect, lock_key: Callable[[str], int], release: Callable[[Hold], Awaitable[None]],
        ttl: timedelta, codec: Codec,
    ) -> None:
        self._connect = connect
        self._lock_key = lock_key
        self._release = release
        self._ttl = ttl
        self._codec = codec
        self._pending: list[Pending] = []
        self._flusher: asyncio.Future[None] | None = None
        self._background: set[asyncio.Future[None]] = set()
        #: transactions run, for tests and benchmarks
        self.transactions = 0

    async def reserve(
        self, policy: TeamPolicy, key: KeyRecord | None, hold: Hold, moment: datetime, spans: tuple[Span, ...],
        price_keys: tuple[str, ...],
    ) -> Admission:
        done: asyncio.Future[Admission] = asyncio.get_running_loop().create_future()
        self._pending.append((policy, key, hold, moment, spans, price_keys, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        return await done

    def _take(self) -> list[Pending]:
        """The next batch: in arrival order, at most MAX_BATCH, and never spanning a TTL (so that no hold of the batch
        could expire before a later admission of the same batch)."""
        first = min(item[3] for item in self._pending[:MAX_BATCH])
        count = 0
        for item in self._pending[:MAX_BATCH]:
            if count and item[3] - first >= self._ttl:
                break
            count += 1
        batch, self._pending = self._pending[:count], self._pending[count:]
        return batch

    async def _flush(self) -> None:
        while self._pending:
            batch = self._take()
            try:
                async with self._connect() as conn:
                    results = await self._run(conn, batch)
            except asyncio.CancelledError as exc:
                for item in batch + self._pending:
                    resolve(item[6], exc)
                raise
            except Exception as exc:
                for item in batch:
                    resolve(item[6], exc)
                continue
            deliver_admissions([item[6] for item in batch], results, self._release, self._background)

    async def _run(self, conn: asyncpg.Connection, batch: list[Pending]) -> list[Admission | HermesError]:
        upto: dict[str, datetime] = {}
        for policy, _, _, moment, *_ in batch:
            upto[policy.name] = max(upto.get(policy.name, moment), moment)
        measures: dict[tuple[str, tuple[Span, ...], str | None], int] = {}
        for policy, key, _, _, spans, *_ in batch:
            measures.setdefault((policy.name, spans, key.id if key else None), len(measures))
        sql, params = pg.admission_batch([(team, spans, key_id, upto[team]) for team, spans, key_id in measures])
        price_keys = sorted({k for item in batch for k in item[5]})
        locks = sorted({self._lock_key(team) for team in upto})
        # BEGIN and the locks, in one stable order, in one round trip (simple protocol; the keys are integers)
        await conn.execute("BEGIN; " + " ".join(f"SELECT pg_advisory_xact_lock({k});" for k in locks))
        try:
            row = await conn.fetchrow(sql, list(upto), list(upto.values()), max(upto.values()), price_keys, *params)
            results = self._decide(batch, row, measures)
            admitted = [hold_values(r.hold, item[3], self._codec) for item, r in zip(batch, results, strict=True)
                        if isinstance(r, Admission)]
            if admitted:
                await conn.execute(pg.INSERT_HOLDS, *(list(column) for column in zip(*admitted, strict=True)))
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
        self.transactions += 1
        return results

    def _decide(
        self, batch: list[Pending], row: Sequence[Any], measures: dict[tuple[str, tuple[Span, ...], str | None], int]
    ) -> list[Admission | HermesError]:
        n = len(pg.DELETED_COLUMNS)
        deleted: list[Deleted] = list(zip(*(row[i] or () for i in range(n)), strict=True))
        factors = {k: tidy(f) for k, f in zip(row[n] or (), row[n + 1] or (), strict=True)}
        rows: dict[tuple[str, tuple[Span, ...], str | None], Sequence[Any]] = {}
        offset = n + 2
        for mkey in measures:  # in insertion order, as the statement's columns
            width = 1 + len(mkey[1]) + (5 if mkey[2] is not None else 0)
            rows[mkey] = row[offset:offset + width]
            offset += width
        seen: dict[str, datetime] = {}
        held: list[Hold] = []  # admitted earlier in this batch
        results: list[Admission | HermesError] = []
        for policy, key, hold, moment, spans, price_keys, _ in batch:
            team = policy.name
            upto = seen[team] = max(seen.get(team, moment), moment)  # the holds billed so far expired by then
            factor = max([ONE, *(factors[k] for k in price_keys if k in factors)])
            if factor > 1:
                hold = replace(hold, amount_usd=scaled_hold(hold.amount_usd, factor), learned_price=True)
            spent, reserved, key_state = read_measure(rows[(team, spans, key.id if key else None)], spans, key, tidy)
            key_spent = key_reserved = Decimal(0)
            for d_team, d_key, amount, expires_at, started_at, cost in deleted:
                if d_team != team:
                    continue
                mine = key_state is not None and d_key == key_state.id
                if expires_at > upto:  # not expired yet for this admission: still held
                    reserved += tidy(amount)
                    key_reserved += tidy(amount) if mine else 0
                elif cost is not None:  # billed by now
                    for i, span in enumerate(spans):
                        if span.is_total or (span.start is not None and span.end is not None and started_at is not None
                                             and span.start <= started_at < span.end):
                            spent[i] += tidy(cost)
                    key_spent += tidy(cost) if mine else 0
            for earlier in held:
                if earlier.team == team and earlier.expires_at > moment:
                    reserved += earlier.amount_usd
                    if key_state is not None and earlier.key_id == key_state.id:
                        key_reserved += earlier.amount_usd
            if key_state is not None:
                key_state = replace(key_state, spent_usd=key_state.spent_usd + key_spent,
                                    reserved_usd=key_state.reserved_usd + key_reserved)
            try:
                decision = admit(policy, key_state, hold.amount_usd,
                                 usages_for(spans, spent, reserved, key_state, policy))
            except HermesError as refusal:  # over budget, or a key revoked meanwhile: this request only
                results.append(refusal)
                continue
            held.append(hold)
            results.append(Admission(hold, decision.budgets, decision.explanation, tidy(factor)))
        return results


class PgSettleBatch:
    """One statement per batch of settles (see :class:`~hermes_proxy.ledger.batching.GroupCommit`); a settle whose
    hold expired and was billed meanwhile replaces that estimate."""

    def __init__(self, connect: Connect, clock: Callable[[], datetime], codec: Codec) -> None:
        self._connect = connect
        self._clock = clock
        self._codec = codec
        #: statements run, for tests and benchmarks
        self.batches = 0

    async def __call__(self, batch: list[Settle]) -> None:
        now = self._clock()
        values = [request_values(record, cost, hold.amount_usd, now, self._codec) for hold, record, cost in batch]
        async with self._connect() as conn:
            inserted = set(await conn.fetchval(pg.SETTLE_BATCH, *(list(c) for c in zip(*values, strict=True)),
                                               [hold.id for hold, *_ in batch]) or ())
            self.batches += 1
            for v in values:
                if v[0] not in inserted:  # a retry, or the hold expired and was billed: replace the estimate
                    await conn.fetchval(pg.REPLACE_ESTIMATE, *v)
