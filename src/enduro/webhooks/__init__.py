"""Progress webhooks: signed, ordered, at-least-once, never blocking the agent.

Events are rows of a durable outbox in the thread's own database (`outbox`), written by a
LangChain callback handler bound to the graph (`handler`) and by the runner at segment
boundaries (`session`), and delivered in the background by an httpx sender (`sender`),
signed per the Standard Webhooks spec (`signing`). docs/webhooks.md is the user's guide.

This package's `__init__` imports nothing: `enduro.checkpointing.migrations` imports the
outbox DDL from `enduro.webhooks.schema`, and the rest of the package imports the
checkpointing layer, so eager imports here would make a cycle.
"""
