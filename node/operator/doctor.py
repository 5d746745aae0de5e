"""``corredor doctor``: is this node fit to run, and how far behind is it?

Checks, each passing or failing with a message that says what to do:

    broker       a bootstrap address accepts TCP connections
    credentials  TLS and SASL accept this home's identity (topics are visible)
    topic        the shared topic exists
    retention    the shared topic keeps messages as long as the regional floor
                 lets a policy retain them, and none is deleted yet: a rebuild
                 of the picture from its beginning misses nothing
    manifest     a manifest is present, verifies against the pinned Secretariat
                 key, is the newest on the control topic, lists this member's
                 current signing key (members) and names this regional floor
    policy       the national policy loads and passes the regional floor
                 (members); the regional floor itself loads (aggregator)
    outbox       (members) the oldest unacknowledged row is younger than the limit
    store        (members) the store is this home's, with its history: not emptied
                 or replaced, its audit log as long as the head file says, not
                 waiting for recover-revisions after a restore, and (online) no
                 revision of this country on the picture topic above its ledger
    signing_key  (members) the newest manifest (the control topic's when online,
                 else the home's) does not revoke this node's key nor has it
                 expired: publish refuses to sign with such a key
    files        the home is 0700 and its stores, their -wal/-shm files, audit
                 head and rejects files are not readable by group or others
    lag          (aggregator) the consumer group is within the limit of the
                 shared topic's end

It also reports figures an operator watches: outbox depth and age, consumer
lag, quarantine counts by reason and dead-letter counts. Checks that need the
broker are skipped (and say so) when an earlier one failed.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from node.aggregator.apply import DEAD_LETTER_REASONS
from node.config import Home, regional_policy_path
from node.crypto.signing import key_id_for, load_public_pem
from node.errors import CorredorError
from node.federation import manifest as fed
from node.federation import trust, trust_ledger
from node.federation.control import MANIFEST_KEY
from node.home import regional_floor
from node.member.member_home import home_policy
from node.model.manifest import SignedManifest
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.transport import health
from node.transport.kafka import read_latest
from node.transport.topic_config import rebuild_problems, required_retention_ms

DEFAULT_MAX_OUTBOX_AGE_S = 3600.0
DEFAULT_MAX_LAG = 10_000


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: skipped
    detail: str


@dataclass
class DoctorReport:
    role: str
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "healthy": self.healthy,
            "checks": [
                {"name": c.name, "status": _status(c.ok), "detail": c.detail} for c in self.checks
            ],
            "figures": self.figures,
        }

    def add(self, name: str, ok: bool | None, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok is True


def _status(ok: bool | None) -> str:
    return "skipped" if ok is None else ("ok" if ok else "problem")


def diagnose(
    home: Home,
    *,
    bootstrap: str | None = None,
    max_outbox_age_s: float = DEFAULT_MAX_OUTBOX_AGE_S,
    max_lag: int = DEFAULT_MAX_LAG,
    timeout_ms: int = 10_000,
) -> DoctorReport:
    """Run every check on ``home``; never raises for a problem it can name."""
    report = DoctorReport("aggregator" if home.is_aggregator else "member")
    address = bootstrap or home.bootstrap
    settings = home.config.kafka
    online = _broker_checks(report, home, address, timeout_ms)
    _manifest_check(report, home, address, online)
    _membership_check(report, home)
    _policy_check(report, home)
    if home.is_aggregator:
        _aggregator_figures(report, home, address, online, max_lag, timeout_ms)
    else:
        _outbox_check(report, home, max_outbox_age_s)
        _store_check(report, home, address, online)
        _signing_key_check(report, home, address, online)
    _files_check(report, home)
    report.figures["topic"] = settings.topic
    return report


def _store_check(report: DoctorReport, home: Home, address: str, online: bool) -> None:
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


def _signing_key_check(report: DoctorReport, home: Home, address: str, online: bool) -> None:
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


def _files_check(report: DoctorReport, home: Home) -> None:
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


def _broker_checks(report: DoctorReport, home: Home, address: str, timeout_ms: int) -> bool:
    try:
        answered = health.reachable(address)
    except CorredorError as exc:
        report.add("broker", False, f"{exc}; is Kafka up, and is kafka.bootstrap right?")
        report.add("credentials", None, "skipped: no broker")
        report.add("topic", None, "skipped: no broker")
        report.add("retention", None, "skipped: no broker")
        return False
    report.add("broker", True, f"{answered} accepts connections")
    settings = home.config.kafka
    who = settings.username or "(no SASL user)"
    try:
        security = home.kafka_security()
        topics = health.visible_topics(address, security, timeout_ms=timeout_ms)
    except CorredorError as exc:
        report.add(
            "credentials",
            False,
            f"{settings.security_protocol} as {who} was refused ({exc}); check "
            "kafka.username, the password file, kafka.ssl_cafile and the listener's protocol",
        )
        report.add("topic", None, "skipped: not logged in")
        report.add("retention", None, "skipped: not logged in")
        return False
    report.add("credentials", True, f"{settings.security_protocol} as {who}")
    if settings.topic in topics:
        report.add("topic", True, f"{settings.topic} exists")
        _retention_check(report, home, address, security, timeout_ms)
    else:
        report.add(
            "topic",
            False,
            f"the shared topic {settings.topic} does not exist or this principal may not "
            "describe it; `corredor deploy init-kafka` creates it and its ACLs",
        )
        report.add("retention", None, "skipped: no shared topic")
    return True


def _retention_check(
    report: DoctorReport,
    home: Home,
    address: str,
    security: dict[str, Any] | None,
    timeout_ms: int,
) -> None:
    """Can the shared topic serve a full rebuild of the picture?"""
    topic = home.config.kafka.topic
    try:
        days = regional_floor().max_retention_days
    except CorredorError as exc:
        report.add("retention", None, f"skipped: the regional floor does not load ({exc})")
        return
    try:
        found = health.topic_retention(address, topic, security, timeout_ms=timeout_ms)
    except CorredorError as exc:
        # Members may not read topic configurations; the Secretariat and the
        # cluster admin may.
        report.add("retention", None, f"not checked: {exc}")
        return
    report.figures["topic_retention_ms"] = int(found.configs.get("retention.ms", "-1"))
    report.figures["topic_log_start"] = found.log_start
    problems = rebuild_problems(found.configs, days, found.log_start)
    if problems:
        required = required_retention_ms(days)
        report.add(
            "retention",
            False,
            f"{topic} cannot serve a full rebuild: " + "; ".join(problems) + ". As the "
            f"cluster admin: `corredor kafka tool kafka-configs --alter --entity-type topics "
            f"--entity-name {topic} --add-config retention.ms={required},retention.bytes=-1`",
        )
    else:
        report.add(
            "retention",
            True,
            f"{topic} keeps every message at least {days} days (the regional floor's "
            "longest retention) and has lost none",
        )


def _manifest_check(report: DoctorReport, home: Home, address: str, online: bool) -> None:
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


def _membership_check(report: DoctorReport, home: Home) -> None:
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


def _policy_check(report: DoctorReport, home: Home) -> None:
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


def _outbox_check(report: DoctorReport, home: Home, max_age_s: float) -> None:
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


def _aggregator_figures(
    report: DoctorReport, home: Home, address: str, online: bool, max_lag: int, timeout_ms: int
) -> None:
    with PictureStore(home.store_path) as store:
        quarantined = store.rejected_by_reason()
        report.figures.update(
            quarantined=sum(quarantined.values()),
            quarantined_by_reason=quarantined,
            dead_lettered=store.dead_letter_count(),
            dead_letters_pending=len(store.pending_dead_letters(DEAD_LETTER_REASONS)),
            relay_pending=len(store.pending_relay()),
        )
    if not online:
        report.add("lag", None, "skipped: not connected")
        return
    settings = home.config.kafka
    try:
        lag = health.group_lag(
            address, settings.topic, settings.group_id, home.kafka_security(), timeout_ms=timeout_ms
        )
    except CorredorError as exc:
        report.add("lag", False, f"cannot measure the consumer lag: {exc}")
        return
    report.figures.update(consumer_lag=lag.lag, topic_end=lag.end)
    if lag.lag > max_lag:
        report.add(
            "lag",
            False,
            f"group {settings.group_id} is {lag.lag} messages behind {settings.topic} "
            f"(limit {max_lag}); is `aggregate --follow` running?",
        )
    else:
        report.add("lag", True, f"group {settings.group_id} is {lag.lag} messages behind")
