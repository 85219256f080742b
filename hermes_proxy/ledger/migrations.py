"""Schema migrations: named functions, applied in order, each recorded by name in ``_hermes_migrations``.

Both backends share them. A migration takes the :class:`Dialect` (the few column types that differ) and returns its
SQL statements; the backend runs them and records the name in the same transaction, holding a lock so that several
processes starting at once migrate exactly once. Never edit a released migration: append a new one.

Types: money is integer nano-dollars on SQLite (exact integer SUM, no float anywhere) and ``NUMERIC(24, 9)`` on
PostgreSQL; time is integer microseconds since the epoch (UTC) on SQLite and ``TIMESTAMPTZ`` on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from hermes_proxy.errors import LedgerUnavailable

MIGRATIONS_TABLE = "_hermes_migrations"


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    money: str
    time: str
    flag: str
    real: str
    bigint: str
    table_suffix: str  # per-table options for small keyed tables


SQLITE = Dialect("sqlite", money="INTEGER", time="INTEGER", flag="INTEGER", real="REAL", bigint="INTEGER",
                 table_suffix=" WITHOUT ROWID")
POSTGRES = Dialect("postgresql", money="NUMERIC(24, 9)", time="TIMESTAMPTZ", flag="BOOLEAN", real="DOUBLE PRECISION",
                   bigint="BIGINT", table_suffix="")

Migration = Callable[[Dialect], list[str]]


def migrations_table_sql(d: Dialect) -> str:
    return f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at {d.time} NOT NULL)"


def m001_keys(d: Dialect) -> list[str]:
    return [
        f"""CREATE TABLE keys (
            id TEXT PRIMARY KEY,
            team TEXT NOT NULL,
            name TEXT NOT NULL,
            prefix TEXT NOT NULL,
            key_hash TEXT NOT NULL UNIQUE,
            limit_usd {d.money},
            spent_usd {d.money} NOT NULL DEFAULT 0,
            created_at {d.time} NOT NULL,
            revoked_at {d.time}
        )""",
        # a name picks one live key of a team; a revoked key's name may be used again
        "CREATE UNIQUE INDEX keys_live_name ON keys (team, name) WHERE revoked_at IS NULL",
        "CREATE INDEX keys_team ON keys (team, created_at)",
    ]


def m002_requests(d: Dialect) -> list[str]:
    return [
        f"""CREATE TABLE requests (
            request_id TEXT PRIMARY KEY,
            started_at {d.time} NOT NULL,
            team TEXT NOT NULL,
            key_id TEXT,
            key_name TEXT,
            model TEXT NOT NULL,
            route TEXT NOT NULL,
            reasoning {d.flag} NOT NULL,
            prompt_tokens {d.bigint} NOT NULL,
            completion_tokens {d.bigint} NOT NULL,
            reasoning_tokens {d.bigint} NOT NULL,
            cost_usd {d.money},
            estimated {d.flag} NOT NULL,
            status TEXT NOT NULL,
            latency_ms {d.real} NOT NULL,
            ttft_ms {d.real},
            reserved_usd {d.money},
            recorded_at {d.time} NOT NULL
        )""",
        "CREATE INDEX requests_team_time ON requests (team, started_at)",
        "CREATE INDEX requests_time ON requests (started_at)",
        "CREATE INDEX requests_key ON requests (key_id)",
    ]


def m003_holds(d: Dialect) -> list[str]:
    return [
        f"""CREATE TABLE holds (
            id TEXT PRIMARY KEY,
            team TEXT NOT NULL,
            key_id TEXT,
            amount_usd {d.money} NOT NULL,
            created_at {d.time} NOT NULL,
            expires_at {d.time} NOT NULL
        )""",
        "CREATE INDEX holds_team ON holds (team, expires_at)",
        "CREATE INDEX holds_key ON holds (key_id, expires_at)",
    ]


def m004_spend_rollups(d: Dialect) -> list[str]:
    return [
        # settled cost per team per UTC hour: a budget window sums at most ~750 of these (a month)
        f"""CREATE TABLE spend_buckets (
            team TEXT NOT NULL,
            bucket_start {d.time} NOT NULL,
            cost_usd {d.money} NOT NULL DEFAULT 0,
            requests {d.bigint} NOT NULL DEFAULT 0,
            PRIMARY KEY (team, bucket_start)
        ){d.table_suffix}""",
        # lifetime spend of a team; on PostgreSQL its row is also the team's admission lock
        f"""CREATE TABLE team_totals (
            team TEXT PRIMARY KEY,
            spent_usd {d.money} NOT NULL DEFAULT 0,
            requests {d.bigint} NOT NULL DEFAULT 0
        ){d.table_suffix}""",
    ]


def m005_hold_info(d: Dialect) -> list[str]:
    # what a hold is for (NULL request_id: a hold without info, dropped when it expires as before) and its last
    # checkpointed usage; an expired hold with info is billed from these as an 'expired', estimated request
    columns = [
        "request_id TEXT", "key_name TEXT", "model TEXT", "route TEXT", f"reasoning {d.flag}", f"started_at {d.time}",
        f"prompt_tokens {d.bigint}", f"completion_tokens {d.bigint}", f"reasoning_tokens {d.bigint}",
        f"cost_usd {d.money}", f"learned_price {d.flag} NOT NULL DEFAULT FALSE",
    ]
    return [f"ALTER TABLE holds ADD COLUMN {column}" for column in columns]


def m006_learned_prices(d: Dialect) -> list[str]:
    # the highest factor (reported cost / configured price) seen per price key, shared by every replica; stored like
    # money (nano-units), read inside the admission transaction
    return [
        f"""CREATE TABLE learned_prices (
            price_key TEXT PRIMARY KEY,
            factor {d.money} NOT NULL,
            observed_at {d.time} NOT NULL
        ){d.table_suffix}""",
    ]


def m007_requests_learned_price(d: Dialect) -> list[str]:
    return [f"ALTER TABLE requests ADD COLUMN learned_price {d.flag} NOT NULL DEFAULT FALSE"]


def m008_stored_responses(d: Dialect) -> list[str]:
    # POST /v1/responses with store: true: the Response object and the conversation items before its output (those
    # inherited through previous_response_id included), as JSON text; kept per team until expires_at
    return [
        f"""CREATE TABLE stored_responses (
            id TEXT PRIMARY KEY,
            team TEXT NOT NULL,
            created_at {d.time} NOT NULL,
            expires_at {d.time} NOT NULL,
            response TEXT NOT NULL,
            input_items TEXT NOT NULL
        )""",
        "CREATE INDEX stored_responses_expiry ON stored_responses (expires_at)",
    ]


def m009_budget_alerts(d: Dialect) -> list[str]:
    # the durable outbox of budget-alert webhooks (hermes_proxy.alerts): one row per alert, keyed by what makes it
    # unique (destination, team, event, window and its start, threshold), so replicas inserting it at once keep one;
    # claimed_until is when it may next be claimed (a sender's lease while it posts, the backoff after a failure)
    return [
        f"""CREATE TABLE budget_alerts (
            dedup_key TEXT PRIMARY KEY,
            team TEXT NOT NULL,
            event TEXT NOT NULL,
            url TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at {d.time} NOT NULL,
            attempts {d.bigint} NOT NULL DEFAULT 0,
            claimed_until {d.time} NOT NULL,
            sent_at {d.time},
            last_error TEXT
        )""",
        "CREATE INDEX budget_alerts_pending ON budget_alerts (claimed_until) WHERE sent_at IS NULL",
    ]



def m010_response_cache(d: Dialect) -> list[str]:
    # the response cache (hermes_proxy.cache) when it lives in the ledger's database: one answer per team and key (a
    # hash of everything that changes the answer), its JSON, size and expiry; and what each cache hit saved, per
    # request id, which the spend report sums beside the cost (the request row itself is the hit's bill)
    return [
        f"""CREATE TABLE response_cache (
            team TEXT NOT NULL,
            cache_key TEXT NOT NULL,
            created_at {d.time} NOT NULL,
            expires_at {d.time} NOT NULL,
            size_bytes {d.bigint} NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (team, cache_key)
        )""",
        "CREATE INDEX response_cache_expiry ON response_cache (expires_at)",
        "CREATE INDEX response_cache_team_age ON response_cache (team, created_at)",
        f"""CREATE TABLE cache_savings (
            request_id TEXT PRIMARY KEY,
            saved_usd {d.money} NOT NULL
        ){d.table_suffix}""",
    ]

MIGRATIONS: tuple[Migration, ...] = (
    m001_keys, m002_requests, m003_holds, m004_spend_rollups, m005_hold_info, m006_learned_prices,
    m007_requests_learned_price, m008_stored_responses, m009_budget_alerts, m010_response_cache,
)


def pending(applied: Collection[str], migrations: tuple[Migration, ...] = MIGRATIONS) -> list[Migration]:
    names = [m.__name__ for m in migrations]
    if len(set(names)) != len(names):
        raise RuntimeError("duplicate migration names")
    unknown = set(applied) - set(names)
    if unknown:
        raise RuntimeError(
            f"the ledger was migrated by a newer hermes-proxy (unknown migrations: {', '.join(sorted(unknown))})")
    return [m for m in migrations if m.__name__ not in applied]


def to_apply(applied: Collection[str], d: Dialect) -> list[tuple[str, list[str]]]:
    """(name, SQL statements) of each migration not yet applied, in order; ``LedgerUnavailable`` when the ledger was
    migrated by a newer hermes-proxy."""
    try:
        return [(m.__name__, m(d)) for m in pending(applied)]
    except RuntimeError as exc:
        raise LedgerUnavailable(str(exc)) from None
