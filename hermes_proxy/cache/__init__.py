"""The response cache: an answer already paid for, given again to the same team for the same request until it expires.

- :mod:`.store`        where the answers live: the ledger's database (SQLite, PostgreSQL) or memory, per team and key,
                       with a byte cap per team (oldest first out), and what each hit saved
- :mod:`.redis_store`  the same store in Redis, shared by every replica; its savings still go to the ledger's database
"""
