"""The storage floor: enduro's database facade, connections, tables and migrations.

Invariants:

- This package imports nothing of enduro outside itself but the two modules beneath
  everything (`enduro.errors`, `enduro._redact`, which import nothing of enduro); beyond
  that, only the standard library, psycopg, psycopg_pool, aiosqlite and LangGraph's
  checkpoint savers. Every other package builds on it, so it can never be part of an
  import cycle (tests/unit/test_layering.py).
- Every enduro table and every change to one is defined here, in `migrations.MIGRATIONS`,
  whatever feature owns the rows. The SQL that reads and writes a feature's rows lives with
  the feature (`enduro.threads`, `enduro.budgets.ledger`, `enduro.webhooks.outbox`) and goes
  through `Database`.
- One database holds everything, on PostgreSQL or SQLite: LangGraph's checkpoints (its
  savers' own tables) and enduro's. Every call to it waits out an outage the same way
  (`outage.OutagePolicy`), the saver's included (`resilient`).
"""

from enduro.storage.backend import (
    Backend,
    is_postgres,
    open_backend,
    open_database,
    postgres_pool,
    sqlite_path,
)
from enduro.storage.database import Database, Dialect, Row, Transaction
from enduro.storage.migrations import MIGRATIONS, SCHEMA_VERSION, Migration, migrate
from enduro.storage.postgres import PostgresDatabase
from enduro.storage.sqlite import SqliteDatabase, sqlite_connection

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Backend",
    "Database",
    "Dialect",
    "Migration",
    "PostgresDatabase",
    "Row",
    "SqliteDatabase",
    "Transaction",
    "is_postgres",
    "migrate",
    "open_backend",
    "open_database",
    "postgres_pool",
    "sqlite_connection",
    "sqlite_path",
]
