"""The SQLite ledger (the default; ``memory://`` is a fresh in-memory one).

``sqlite3`` blocks, so one dedicated worker thread owns the one connection and every operation is a single hop to it:
the event loop never blocks, and operations of one process are serialized by that thread. Writes run in
``BEGIN IMMEDIATE`` transactions, which take SQLite's write lock up front, so the read-check-insert of a reservation is
atomic across processes sharing the file as well. WAL journal with ``synchronous=NORMAL``: each committed settle survives
a killed process (the WAL is in the OS page cache); only an OS crash or power loss may drop the last commits.
Money is stored as integer nano-dollars, time as integer microseconds since the epoch (UTC).

The package: ``worker`` (the connection, its thread, transactions, migrations), ``billing`` (request rows, expired
holds billed, roll-ups), ``statements`` (what runs in a transaction on that thread), ``groups`` (group admission and
group commit), ``ledger`` (:class:`SQLiteLedger`).
"""

from hermes_proxy.ledger.sqlite.ledger import SQLiteLedger

__all__ = ["SQLiteLedger"]
