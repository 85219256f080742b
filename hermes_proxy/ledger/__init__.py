"""The spend ledger: reservations, settled requests, keys. ``open_ledger`` picks the backend from the URL.

- ``sqlite:///relative/path`` or ``sqlite:////absolute/path`` (the default lives in the user's data dir);
- ``memory://``: a fresh in-memory SQLite (tests, demo);
- ``postgresql://user@host:port/db`` (``postgres://`` too). Extra query parameters are PostgreSQL settings, e.g.
  ``?search_path=hermes`` to keep the tables in their own schema.
"""

from __future__ import annotations

from hermes_proxy.config import LedgerConfig
from hermes_proxy.errors import ConfigError
from hermes_proxy.ledger.base import (
    Admission,
    BudgetStatus,
    Clock,
    Hold,
    HoldInfo,
    KeyRecord,
    Ledger,
    Progress,
    RequestRecord,
)

__all__ = [
    "Admission", "BudgetStatus", "Hold", "HoldInfo", "KeyRecord", "Ledger", "Progress", "RequestRecord", "open_ledger",
    "sqlite_path",
]


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:`` URL (``:memory:`` for ``memory://``, ``sqlite://`` and ``sqlite:///:memory:``)."""
    if url.startswith("memory://"):
        return ":memory:"
    if not url.startswith("sqlite://"):
        raise ConfigError("ledger.url", f"not a SQLite URL: {url!r}")
    rest = url[len("sqlite://"):]
    if rest in ("", "/", "/:memory:"):
        return ":memory:"
    if not rest.startswith("/"):
        raise ConfigError("ledger.url", f"write sqlite:///relative/path or sqlite:////absolute/path, got {url!r}")
    return rest[1:]


def open_ledger(config: LedgerConfig, *, clock: Clock | None = None) -> Ledger:
    """The ledger for ``config.url``, not yet started (call ``await ledger.start()``)."""
    url = config.url
    if url.startswith(("postgresql://", "postgres://")):
        from hermes_proxy.ledger.postgres import PostgresLedger

        return PostgresLedger(url, reservation_ttl_s=config.reservation_ttl_s, clock=clock)
    if url.startswith(("sqlite://", "memory://")):
        from hermes_proxy.ledger.sqlite import SQLiteLedger

        return SQLiteLedger(sqlite_path(url), reservation_ttl_s=config.reservation_ttl_s, clock=clock)
    raise ConfigError("ledger.url", f"must start with sqlite:///, postgresql:// or memory://, got {url!r}")
