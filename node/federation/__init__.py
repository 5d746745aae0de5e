"""The federation's room: who belongs, whose keys count, what a home trusts.

- ``manifest``: the signed federation manifest (drafting, signing, verifying,
  distributing) and the key directory the aggregator and the inbox verify
  against;
- ``membership``: the trust view: founders, quorum approvals and key
  continuity, decided by the members;
- ``manifest_diff``: what changed between two manifests (``federation sync``);
- ``statements``: what the members sign (the founders list, key statements,
  approvals, self-revocations) and the changes they approve;
- ``trust``: keys and the manifest as a home sees them (``corredor keys`` and
  ``corredor federation``): its own keys, the current manifest, the trust view
  and the key directory;
- ``drafts``: the Secretariat's manifest draft, signed as the next serial;
- ``linkage_keys``: the regional linkage key, created, sealed and accepted;
- ``trust_ledger``: what a home remembers about the federation under
  ``<home>/trust/``;
- ``anchors``: audit-log heads anchored outside the writer;
- ``control``: the verbs on the control topic (publish and sync the
  manifest, approve a change, revoke one's own key, share the linkage key,
  publish the audit head).

Import the module you need (``from node.federation import trust``): this file
imports none of them, so importing one does not load the others.
"""

__all__ = [
    "anchors",
    "control",
    "drafts",
    "linkage_keys",
    "manifest",
    "manifest_diff",
    "membership",
    "statements",
    "trust",
    "trust_ledger",
]
