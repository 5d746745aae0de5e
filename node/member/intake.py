"""``corredor ingest`` on a member's home: an encounter file stored at home and
staged in the same transaction, or a reference file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from node.config import Home
from node.errors import ConfigError, PolicyError
from node.home import require_member
from node.member import encounters
from node.member.ingest import IngestReport, ingest_encounters
from node.member.ingest_reference import ENCOUNTERS, detect_kind, ingest_reference
from node.member.keys import own_key_problem
from node.member.member_home import home_policy, member_store
from node.member.staging import stage_publication
from node.policy.model import Policy
from node.store.reference import ReferenceStore


def ingest(
    home: Home,
    file: Path,
    progress: Callable[[int], None] | None = None,
    *,
    kind: str | None = None,
    stage: bool = True,
) -> IngestReport:
    """Ingest an encounter file, or a reference file (``kind`` from ``--kind``,
    else detected from the header or first JSON object)."""
    require_member(home)
    kind = kind or detect_kind(file)
    if kind != ENCOUNTERS:
        with ReferenceStore(home.store_path) as references:
            return ingest_reference(file, kind, references, home.rejects_dir, home.country)
    # Keeping raw records at home needs no policy: a broken one only holds
    # back staging, which the next publish under a valid policy catches up.
    policy: Policy | None = None
    waits: str | None = None
    if stage:
        try:
            policy = home_policy(home)
        except (PolicyError, ConfigError) as exc:
            waits = f"staging waits for a valid policy: {exc}"
    with member_store(home) as store, store.staging_lock(), store.transaction():
        # The records, the events they produce and their outbox rows land
        # together or not at all (a transactional outbox). The staging lock is
        # taken first: a publish staging in chunks holds it between its
        # transactions, and must not find this one holding SQLite's.
        report = ingest_encounters(
            file,
            store,
            home.rejects_dir,
            progress=progress,
            places=encounters.gazetteer(home.country),
            places_file=encounters.gazetteer_file(home.country),
        )
        # Raw records are stored whatever the policy's or the key's state;
        # nothing is staged under a broken policy (the next publish under a
        # valid one catches up) or signed with a revoked or expired key
        # (publish refuses, saying why).
        key_problem = own_key_problem(home) if policy is not None else None
        if report.stored and policy is not None and key_problem is None:
            plan, _ = stage_publication(home, store, policy)
            report.staged = plan.staged
        elif report.stored and stage:
            report.staging_waits = waits or f"staging waits for a usable signing key: {key_problem}"
        return report
