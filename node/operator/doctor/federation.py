"""Doctor checks of the federation as this home sees it: the manifest (present,
verified, the newest, naming this floor), membership under quorum, this
member's signing key not revoked or expired, and the policy against the floor."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from node.config import Home, regional_policy_path
from node.crypto.signing import key_id_for, load_public_pem
from node.errors import CorredorError
from node.federation import manifest as fed
from node.federation import trust, trust_ledger
from node.federation.control import MANIFEST_KEY
from node.home import regional_floor
from node.member.member_home import home_policy
from node.model.manifest import SignedManifest
from node.operator.doctor.report import DoctorReport
from node.transport.kafka_consumer import read_latest


def signing_key_check(report: DoctorReport, home: Home, address: str, online: bool) -> None:
    """Does the federation still trust this node's own signing key?"""
    try:
        public = load_public_pem(home.public_key_path.read_bytes())
    except (OSError, CorredorError) as exc:
        report.add("signing_key", False, f"cannot read this node's public key: {exc}")
        return
    key_id = key_id_for(home.country, public)
    manifest = None
    source = "the home's manifest"
    if online and home.secretariat_pub_path.is_file():
        try:
            value = read_latest(
                address,
                home.config.kafka.control_topic,
                MANIFEST_KEY,
                security=home.kafka_security(),
                timeout_s=10,
            )
            if value is not None:
                manifest = fed.verify_manifest(
                    SignedManifest.model_validate_json(value), *_pinned(home)
                )
                source = "the control topic's manifest"
        except (CorredorError, ValueError):
            manifest = None  # the manifest check names it
    if manifest is None and home.manifest_path.exists():
        try:
            manifest = trust.current_manifest(home)
        except CorredorError:
            manifest = None
    if manifest is None:
        report.add("signing_key", None, f"skipped: no manifest to check {key_id} against")
        return
    found = manifest.signing_key(key_id)
    if found is None:
        report.add(
            "signing_key", None, f"{key_id} is not in {source} (serial {manifest.serial}) yet"
        )
        return
    state = found[1].state_at(datetime.now(UTC))
    if state != "valid":
        report.add(
            "signing_key",
            False,
            f"{key_id} is {state} in {source} (serial {manifest.serial}): publish refuses to "
            "sign with it; rotate it (`corredor keys rotate`), send keys/signing.pub to the "
            "Secretariat, then `corredor federation sync`",
        )
        return
    report.add("signing_key", True, f"{key_id} is valid in {source} (serial {manifest.serial})")


def manifest_check(report: DoctorReport, home: Home, address: str, online: bool) -> None:
    if not home.manifest_path.exists():
        fix = (
            "run `corredor federation sign --publish`"
            if home.is_aggregator
            else "run `corredor federation sync` once the Secretariat has added this country"
        )
        report.add("manifest", False, f"no manifest at {home.manifest_path}; {fix}")
        return
    try:
        manifest = trust.current_manifest(home)
    except CorredorError as exc:
        report.add("manifest", False, f"the manifest does not verify: {exc}")
        return
    report.figures["manifest_serial"] = manifest.serial
    notes = [f"serial {manifest.serial}, signed by {manifest.secretariat_key_id}"]
    if manifest.regional_policy_sha256 is not None:
        local = hashlib.sha256(regional_policy_path().read_bytes()).hexdigest()
        if local != manifest.regional_policy_sha256:
            report.add(
                "manifest",
                False,
                "the manifest names another regional floor than policies/regional.yaml "
                "here; upgrade this node to the release the federation agreed",
            )
            return
    if not home.is_aggregator:
        public = load_public_pem(home.public_key_path.read_bytes())
        key_id = key_id_for(home.country, public)
        found = manifest.signing_key(key_id)
        if found is None:
            report.add(
                "manifest",
                False,
                f"this node's signing key {key_id} is not in the manifest; send "
                "keys/signing.pub to the Secretariat (`corredor keys export-public`)",
            )
            return
        state = found[1].state_at(datetime.now(UTC))
        if state != "valid":
            report.add("manifest", False, f"this node's signing key {key_id} is {state}; rotate it")
            return
    if not online:
        notes.append("not compared with the control topic (no broker)")
    else:
        try:
            value = read_latest(
                address,
                home.config.kafka.control_topic,
                MANIFEST_KEY,
                security=home.kafka_security(),
                timeout_s=10,
            )
        except CorredorError as exc:
            report.add("manifest", False, f"cannot read the control topic: {exc}")
            return
        if value is None:
            if home.is_aggregator:
                report.add(
                    "manifest",
                    False,
                    f"no manifest on {home.config.kafka.control_topic}; members cannot "
                    "sync: run `corredor federation sign --publish`",
                )
                return
            notes.append("none on the control topic yet")
        else:
            published = SignedManifest.model_validate_json(value)
            try:
                newest = fed.verify_manifest(published, *_pinned(home))
            except CorredorError as exc:
                report.add(
                    "manifest", False, f"the control topic's manifest does not verify: {exc}"
                )
                return
            if newest.serial > manifest.serial:
                report.add(
                    "manifest",
                    False,
                    f"serial {manifest.serial} here, {newest.serial} on the control topic; "
                    "run `corredor federation sync`",
                )
                return
            if newest.serial < manifest.serial and home.is_aggregator:
                report.add(
                    "manifest",
                    False,
                    f"serial {manifest.serial} here but {newest.serial} published; run "
                    "`corredor federation sign --publish`",
                )
                return
            notes.append("same as the control topic")
    report.add("manifest", True, "; ".join(notes))


def membership_check(report: DoctorReport, home: Home) -> None:
    """Whether the manifest holds under quorum, not only under the Secretariat's
    key; and any equivocation this home has seen."""
    seen = trust_ledger.alarms(home)
    if seen:
        last = seen[-1]
        report.add(
            "federation-alarms",
            False,
            f"{len(seen)} alarm(s); last {last['kind']} at {last['at']}: {last['detail']}",
        )
    if not home.manifest_path.exists():
        return
    try:
        manifest = trust.current_manifest(home)
        view = trust.trust_view(home, manifest)
    except CorredorError as exc:
        report.add("membership", False, f"cannot evaluate membership: {exc}")
        return
    if not view.enforced:
        report.add(
            "membership",
            None,
            "no founders pinned: membership and keys are the Secretariat's word alone; "
            "pin the founding list (`corredor federation pin-founders FILE --digest HEX`)",
        )
        return
    problems = view.problems
    if problems:
        report.add(
            "membership",
            False,
            f"manifest serial {manifest.serial} verifies under the Secretariat's key but "
            f"not under quorum: {'; '.join(problems)}",
        )
        return
    counted = sum(1 for s in view.status.values() if s == "member")
    report.add("membership", True, f"{counted} members counted under quorum")


def _pinned(home: Home) -> tuple[Any, str]:
    key_id, public = trust.pinned_secretariat(home)
    return public, key_id


def policy_check(report: DoctorReport, home: Home) -> None:
    try:
        if home.is_aggregator:
            regional_floor()
            report.add("policy", True, "the regional floor loads")
            return
        policy = home_policy(home)
    except CorredorError as exc:
        report.add("policy", False, f"{exc}")
        return
    report.figures["policy_version"] = policy.version
    report.add("policy", True, f"{policy.version} passes the regional floor")
