"""Progress webhooks: signed, ordered, at-least-once, never blocking the agent.

Events are rows of a durable outbox in the thread's own database (`outbox`), written by a
LangChain callback handler bound to the graph (`handler`) and by the runner at segment
boundaries (`session`), and delivered in the background by an httpx sender (`sender`),
signed per the Standard Webhooks spec (`signing`). docs/webhooks.md is the user's guide.

The outbox's tables are defined with every other table in `enduro.storage.migrations`.
"""
