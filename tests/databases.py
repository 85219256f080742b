"""A database of its own for a test: a SQLite file in tmp_path, or a fresh PostgreSQL schema (dropped afterwards) on
$HERMES_TEST_POSTGRES_URL, skipped when that is unset."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

PG_ENV = "HERMES_TEST_POSTGRES_URL"


@asynccontextmanager
async def fresh_postgres_url() -> AsyncIterator[str]:
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    schema = f"hermes_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(base)
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    await conn.close()
    try:
        yield f"{base}{'&' if '?' in base else '?'}search_path={schema}"
    finally:
        conn = await asyncpg.connect(base)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


@asynccontextmanager
async def database_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """``kind``: ``sqlite`` or ``postgres``."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
        return
    async with fresh_postgres_url() as url:
        yield url
