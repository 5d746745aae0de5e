"""The member's room: what a member node does with its own data.

Ingest, keys, flow and record planning, reference events, staging, the
outbox drain and its worker processes, publish, follow, preview,
corrections and the inbox.
"""
