"""The SQLite ledger (the default; ``memory://`` is a fresh in-memory one).

One connection per process. A request's own small transactions (admission, settle) run on the event loop when SQLite's
write lock can be had at once, and on a worker thread, which may wait for it, when another process holds it; reports,
purges and WAL checkpoints always run on that thread (see ``worker``). The connection is used by one thread at a time,
in the order operations were asked for. Writes run in ``BEGIN IMMEDIATE`` transactions, which take SQLite's write lock up front, so the read-check-insert of a reservation is
atomic across processes sharing the file as well. WAL journal with ``synchronous=NORMAL``: each committed settle survives
a killed process (the WAL is in the OS page cache); only an OS crash or power loss may drop the last commits.
Money is stored as integer nano-dollars, time as integer microseconds since the epoch (UTC).

The package: ``worker`` (the connection, its thread, transactions, migrations), ``billing`` (request rows, expired
holds billed, roll-ups), ``statements`` (what runs in a transaction on the connection), ``groups`` (group admission and
group commit), ``ledger`` (:class:`SQLiteLedger`).
"""

from hermes_proxy.ledger.sqlite.ledger import SQLiteLedger

__all__ = ["SQLiteLedger"]
