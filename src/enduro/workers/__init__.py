"""The worker tier: threads advanced by `enduro worker` processes through procrastinate, a
PostgreSQL job queue in the same database (see docs/workers.md)."""
