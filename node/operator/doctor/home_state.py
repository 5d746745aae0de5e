"""Doctor checks of the home itself: a member's store is its own, with its history;
its outbox is drained; the home's files are private."""

from __future__ import annotations

import time

from node.config import Home
from node.errors import CorredorError
from node.operator.doctor.report import DoctorReport
from node.store.node_store import NodeStore


def store_check(report: DoctorReport, home: Home, address: str, online: bool) -> None:
    """Is the member's store this home's, with its history (node.store.identity)?"""
    from node.member import revisions
    from node.store import identity as ident

    try:
        with NodeStore(home.store_path) as store:
            conn = store.connection
            found, identity = ident.problems(conn, home.store_path, "member", home.country)
            ledger = {
                s: int(r)
                for s, r in conn.execute("SELECT subject, revision FROM published_subject")
            }
            version = store.schema_version
            never_sent = not store.outbox_status().acked and not store.has_recovered_revisions()
    except CorredorError as exc:
        report.add("store", False, f"{exc}")
        return
    report.figures.update(
        store_id=identity.store_id if identity is not None else None, schema_version=version
    )
    if found:
        report.add("store", False, f"{'; '.join(found)}; {ident.RECOVER_HINT}")
        return
    if identity is not None and identity.pending_recovery:
        report.add(
            "store",
            False,
            f"{identity.pending_recovery}: nothing is staged or published until "
            "`corredor recover-revisions` raises its revisions above the federation's",
        )
        return
    notes = [f"store {identity.store_id if identity else '(no identity yet)'}, schema v{version}"]
    if online:
        try:
            known = revisions.from_picture_topic(home, address)
        except CorredorError as exc:
            report.add("store", False, f"cannot read the picture topic: {exc}")
            return
        if known and never_sent:
            report.add(
                "store",
                False,
                f"this store has never published, but the picture topic holds {len(known)} "
                f"of {home.country}'s subjects (up to revision {max(known.values())}): it "
                "lost its history, and its revisions would start again at 1; run "
                "`corredor recover-revisions`",
            )
            return
        ahead = {s: r for s, r in known.items() if r > ledger.get(s, 0)}
        if ahead:
            top = max(ahead.values())
            report.add(
                "store",
                False,
                f"the picture topic holds {len(ahead)} of {home.country}'s subjects at "
                f"revisions this store never staged (up to {top}): it lost history, and its "
                "next revisions would be stale; run `corredor recover-revisions`",
            )
            return
        notes.append(f"no revision on the picture topic above its ledger ({len(known)} subjects)")
    report.add("store", True, "; ".join(notes))


def files_check(report: DoctorReport, home: Home) -> None:
    """Raw data (stores, their WAL files, rejects) readable by no one else."""
    from node.files import loose_files

    loose = loose_files(home.path)
    if loose:
        listed = ", ".join(f"{p.name} {oct(mode)[2:]}" for p, mode in loose[:8])
        more = f" and {len(loose) - 8} more" if len(loose) > 8 else ""
        report.add(
            "files",
            False,
            f"readable or writable by others: {listed}{more}; these hold raw data: "
            f"chmod 700 {home.path} and chmod 600 the files",
        )
    else:
        report.add("files", True, "the home is 0700; stores, WAL files and rejects are 0600")


def outbox_check(report: DoctorReport, home: Home, max_age_s: float) -> None:
    with NodeStore(home.store_path) as store:
        status = store.outbox_status()
    age = None if status.oldest_pending_at is None else time.time() - status.oldest_pending_at
    report.figures.update(
        outbox_pending=status.pending,
        outbox_oldest_age_s=None if age is None else round(age, 1),
        outbox_acknowledged=status.acked,
    )
    if age is not None and age > max_age_s:
        report.add(
            "outbox",
            False,
            f"{status.pending} events waiting, the oldest for {age:.0f} s (limit "
            f"{max_age_s:.0f} s); is `publish --follow` running and can it reach Kafka?",
        )
    else:
        report.add("outbox", True, f"{status.pending} events waiting")
