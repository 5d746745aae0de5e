"""What a home remembers about the federation, under ``<home>/trust/``.

- ``founders.json``: the founding members and key ids, pinned out of band (the
  root of trust for membership, ``node.federation.membership``).
- ``approvals/``: members' signed approvals of changes, as read from the
  control topic or made here.
- ``manifest-heads.json``: every manifest (serial -> SHA-256 of its payload)
  this home has accepted, to catch a Secretariat showing two histories.
- ``peer-heads.json``: the latest signed audit and manifest heads of the other
  parties (``node.federation.anchors``).
- ``alarms.jsonl``: equivocations and forks seen, for ``doctor``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from node.config import Home
from node.errors import ConfigError, CorredorError
from node.federation import manifest as fed
from node.federation.statements import Approval, Founders, SelfRevocation

log = logging.getLogger("corredor.trust")


class ManifestAlarm(CorredorError):
    """A manifest that contradicts one seen before (same serial, other content;
    or a next serial that does not extend the last head). The last good
    manifest stays current."""


def trust_dir(home: Home) -> Path:
    return home.path / "trust"


def founders_path(home: Home) -> Path:
    return trust_dir(home) / "founders.json"


def approvals_dir(home: Home) -> Path:
    return trust_dir(home) / "approvals"


def heads_path(home: Home) -> Path:
    return trust_dir(home) / "manifest-heads.json"


def alarms_path(home: Home) -> Path:
    return trust_dir(home) / "alarms.jsonl"


def peer_heads_path(home: Home) -> Path:
    return trust_dir(home) / "peer-heads.json"


def linkage_recipients_path(home: Home) -> Path:
    return trust_dir(home) / "linkage-recipients.json"


# -- founders ----------------------------------------------------------------------


def load_founders(home: Home) -> Founders | None:
    path = founders_path(home)
    if not path.is_file():
        return None
    try:
        return Founders.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise ConfigError(f"{path}: not a founders list: {exc.errors()[0]['msg']}") from exc


def read_founders_file(path: Path) -> Founders:
    try:
        return Founders.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"no founders list at {path}") from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path}: field {where}: {err['msg']}") from exc


def pin_founders(home: Home, founders: Founders, expect_digest: str | None = None) -> str:
    """Pin the founding list; refuses to replace a different one already pinned."""
    digest = founders.digest()
    if expect_digest is not None and expect_digest.lower() != digest:
        raise ConfigError(
            f"founders list digest {digest} does not match the one agreed out of band "
            f"({expect_digest})"
        )
    current = load_founders(home)
    if current is not None and current.digest() != digest:
        raise ConfigError(
            f"{founders_path(home)} already pins another founders list ({current.digest()[:16]}); "
            "founders are the root of trust and are not replaced in place"
        )
    fed.write_json(founders_path(home), founders.model_dump_json(indent=2))
    return digest


# -- approvals ---------------------------------------------------------------------


def store_approval(home: Home, approval: Approval) -> bool:
    """Keep an approval (verified later, when the trust view is computed)."""
    if not approval.change_id.isalnum() or not approval.approver.isalnum():
        return False
    path = approvals_dir(home) / f"{approval.change_id}.{approval.approver}.json"
    text = approval.to_json()
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    fed.write_json(path, text)
    return True


def load_approvals(home: Home) -> list[Approval]:
    folder = approvals_dir(home)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            out.append(Approval.model_validate_json(path.read_text(encoding="utf-8")))
        except ValidationError:
            log.warning("approval file %s is malformed; ignored", path.name)
    return out


def revocations_dir(home: Home) -> Path:
    return trust_dir(home) / "revocations"


def store_revocation(home: Home, revocation: SelfRevocation) -> bool:
    name = f"{revocation.country}.{revocation.key_id.replace(':', '-')}.json"
    if not all(c.isalnum() or c in ".-" for c in name):
        return False
    path = revocations_dir(home) / name
    text = revocation.to_json()
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    fed.write_json(path, text)
    return True


def load_revocations(home: Home) -> list[SelfRevocation]:
    folder = revocations_dir(home)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            out.append(SelfRevocation.model_validate_json(path.read_text(encoding="utf-8")))
        except ValidationError:
            log.warning("revocation file %s is malformed; ignored", path.name)
    return out


# -- manifest heads and alarms -----------------------------------------------------


def load_heads(home: Home) -> dict[int, str]:
    path = heads_path(home)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {int(k): str(v) for k, v in data.items()}


def record_head(home: Home, serial: int, digest: str) -> None:
    heads = load_heads(home)
    heads[serial] = digest
    fed.write_json(heads_path(home), json.dumps({str(k): v for k, v in sorted(heads.items())}))


def alarm(home: Home, kind: str, detail: str) -> None:
    """Record and log an alarm, then refuse (raise ManifestAlarm)."""
    note(home, kind, detail)
    raise ManifestAlarm(f"{kind}: {detail}; the last good manifest stays current")


def note(home: Home, kind: str, detail: str) -> None:
    """Record and log an alarm without raising."""
    log.error("federation alarm %s: %s", kind, detail)
    path = alarms_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "kind": kind, "detail": detail}
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def alarms(home: Home) -> list[dict[str, Any]]:
    path = alarms_path(home)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
