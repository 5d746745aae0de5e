"""The member's room: what a member node does with its own data.

- a home and its standing: ``member_home`` (made, its store and policy),
  ``keys`` (whether it may sign now, the factory that signs);
- ingest: ``intake`` (a file into a home, staged at once), ``ingest``
  (``rejects``: where a bad row goes),
  ``ingest_reference``, ``encounters`` (gazetteer, pseudonym and linkage keys);
- what leaves: ``flow_release`` and ``record_release`` (the flow statistics
  and encounter records the policy lets out), ``reference_pipeline``,
  ``ledger_diff`` (against what was published before, through the egress
  guard), ``event_factory`` (signed events), ``staging`` (to the outbox);
- publish: ``publish``, ``drain`` (the outbox to Kafka), ``workers`` and
  ``worker_main`` (its processes), ``follow`` (``publish --follow``),
  ``revisions``;
- ``preview`` (what would leave), ``policy_diff`` (under two policies),
  ``policy_audit`` (policy check, explain, audit), ``corrections`` and the
  ``inbox``.
"""

__all__ = [
    "corrections",
    "drain",
    "encounters",
    "event_factory",
    "flow_release",
    "follow",
    "inbox",
    "ingest",
    "ingest_reference",
    "intake",
    "keys",
    "ledger_diff",
    "member_home",
    "policy_audit",
    "policy_diff",
    "preview",
    "publish",
    "record_release",
    "reference_pipeline",
    "rejects",
    "revisions",
    "staging",
    "worker_main",
    "workers",
]
