"""What changed between two manifests, as ``federation sync`` prints it:
members added or removed, keys added and who vouched for them, status
changes, approvals, and what lacks quorum (``node.federation.membership``
decides what counts; this only says what changed)."""

from __future__ import annotations

from node.federation.membership import TrustView
from node.federation.statements import describe
from node.model.manifest import Manifest


def diff(
    old: Manifest | None, old_view: TrustView | None, new: Manifest, new_view: TrustView
) -> list[str]:
    """Lines for ``federation sync``: members added or removed, keys added and
    who vouched for them, status changes, approvals, and what lacks quorum."""
    lines: list[str] = []
    before = {m.country: m for m in old.members} if old else {}
    after = {m.country: m for m in new.members}
    for country in sorted(after.keys() - before.keys()):
        state = "counted" if new_view.counts(country) else "NOT counted: no quorum"
        lines.append(f"+ member {country} ({after[country].status}) added; {state}")
    for country in sorted(before.keys() - after.keys()):
        lines.append(f"- member {country} removed")
    for country in sorted(after.keys() & before.keys()):
        a, b = before[country], after[country]
        if a.status != b.status:
            now = new_view.status.get(country, "not counted")
            lines.append(f"~ {country} status {a.status} -> {b.status}; counted as {now}")
        for kind, olds, news in (
            ("signing", a.signing_keys, b.signing_keys),
            ("encryption", a.encryption_keys, b.encryption_keys),
        ):
            old_ids = {k.key_id: k for k in olds}
            for k in news:
                if k.key_id not in old_ids:
                    ok = (
                        new_view.signing_key_ok(country, k.key_id)
                        if kind == "signing"
                        else new_view.encryption_key_ok(country, k.key_id)
                    )
                    by = new_view.vouched_by.get(k.key_id)
                    verdict = f"signed by {by}" if ok and by else "accepted" if ok else "REJECTED"
                    lines.append(f"~ {country} new {kind} key {k.key_id}: {verdict}")
                elif k.revoked_at and not old_ids[k.key_id].revoked_at:
                    lines.append(f"- {country} {kind} key {k.key_id} revoked")
    old_approved = old_view.approved if old_view else {}
    for cid, who in sorted(new_view.approved.items()):
        if cid not in old_approved:
            lines.append(f"= change {cid} approved by {', '.join(who)}")
    for p in new_view.pending:
        lines.append(
            f"! change {p.change_id} lacks quorum ({len(p.approvals)}/{p.needed}"
            f"{': ' + ', '.join(p.approvals) if p.approvals else ''}): {describe(p.change)}"
        )
    for r in new_view.rejected:
        lines.append(f"! {r.country} {r.kind} key {r.key_id} rejected: {r.reason}")
    if new_view.enforced and (new_view.pending or new_view.rejected):
        lines.append(
            "! this manifest verifies under the Secretariat's key but not under quorum: "
            "what lacks quorum is not trusted"
        )
    if not new_view.enforced:
        lines.append(
            "! no founders pinned: membership is the Secretariat's word alone "
            "(`corredor federation pin-founders FILE`)"
        )
    return lines
