"""The response cache: an answer already paid for, given again to the same team for the same request until it expires.

- :mod:`.store`        where the answers live: the ledger's database (SQLite, PostgreSQL) or memory, per team and key,
                       with a byte cap per team (oldest first out), and what each hit saved
- :mod:`.redis_store`  the same store in Redis, shared by every replica; its savings still go to the ledger's database
- :mod:`.key`          whether a request uses the cache (the team's flag, the request's header or field) and its key
- :mod:`.answer`       a kept answer: the pieces the client was sent, its usage and first cost; JSON, and its replay

The request path's side is :mod:`hermes_proxy.pipeline.cached`.
"""
