"""Opening a fresh SQLite ledger while another process has it open (replicas or ``serve --workers`` starting at once)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from hermes_proxy.ledger.sqlite.worker import set_wal


def test_switching_a_fresh_file_to_wal_waits_for_another_connection_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (x INTEGER)")
    other.execute("BEGIN")
    other.execute("SELECT * FROM t").fetchall()  # a reader holds the file: the switch to WAL cannot happen now
    mine = sqlite3.connect(path, isolation_level=None, timeout=0)  # no busy handler: SQLite's answer comes at once
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        mine.execute("PRAGMA journal_mode = WAL")
    release = threading.Timer(0.2, lambda: other.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    set_wal(mine, within_s=5)
    assert mine.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert 0.15 < time.monotonic() - started < 5
    release.join()
    other.close()
    mine.close()
