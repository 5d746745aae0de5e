"""What an operator does with a home, as library calls the CLI stays thin over.

Each function opens what it needs from a home, does one job and closes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from node.aggregator.apply import (
    DEAD_LETTER_REASONS,
    ApplyStats,
    consume_until_caught_up,
)
from node.aggregator.checks import APPENDED_AT_HEADER
from node.aggregator.run import build_aggregator
from node.config import (
    DEFAULT_TOPIC,
    Home,
    HomeConfig,
    KafkaSettings,
    dead_letter_topic_for,
    key_passphrase,
    load_home,
    policies_dir,
    regional_policy_path,
)
from node.crypto.keys import read_key_text
from node.crypto.linkage import KeyBundle
from node.crypto.signing import SigningKey, key_id_for, load_public_pem
from node.errors import (
    ConfigError,
    CorredorError,
    KeyNotUsable,
    PolicyError,
    RecordTooLarge,
    SignatureInvalid,
    StoreLostHistory,
    TransportError,
)
from node.federation import (
    anchors,
    drafts,
    linkage_keys,
    membership,
    statements,
    trust,
    trust_ledger,
)
from node.files import private_dir
from node.home import event_codec as event_codec
from node.home import picture_topic as _picture_topic
from node.home import require_aggregator as _aggregator
from node.home import require_member as _member
from node.member import encounters, revisions
from node.member.inbox import InboxResult, open_inbox
from node.member.ingest import IngestReport, ingest_encounters
from node.member.ingest_reference import ENCOUNTERS, detect_kind, ingest_reference
from node.member.pipeline import (
    FLOW_KIND,
    DrainResult,
    EncounterPlan,
    EncounterStream,
    EventFactory,
    PublishPlan,
    allowed_by_kind,
    drain_outbox,
    egress_guard,
    encounter_withdrawals,
    held_back_records,
    prepare_flow_events,
)
from node.member.reference_pipeline import ReferencePlan, plan_with_reference
from node.member.workers import BackgroundDrainer, StagerProcess
from node.model.codes import is_iso3
from node.model.manifest import Manifest, SignedManifest
from node.model.reference import REFERENCE_MODELS
from node.policy import privacy
from node.policy.floor import RegionalFloor
from node.policy.guard import EgressGuard, Refusal
from node.policy.loader import load_floor, load_policy
from node.policy.model import Policy
from node.store.identity import RECOVER_HINT
from node.store.node_store import NodeStore, OutboxStatus
from node.store.picture import PictureStore, Rejected
from node.store.reference import ReferenceStore
from node.transport import health
from node.transport.base import EventSink, Message
from node.transport.clients import group_source, read_topic
from node.transport.confluent_producer import ConfluentSink
from node.transport.confluent_source import ConfluentSource
from node.transport.kafka_admin import ensure_topic
from node.transport.kafka_consumer import KafkaSource, read_all, read_latest
from node.transport.kafka_producer import KafkaSink, publish_record
from node.transport.topic_config import shared_topic_configs

log = logging.getLogger(__name__)


# -- set-up --------------------------------------------------------------------


def _fresh_home(path: Path) -> None:
    if (path / "corredor.yaml").exists():
        raise ConfigError(f"{path} is already a Corredor home")
    private_dir(path)  # raw data and keys live here: 0700 whatever the umask


def init_member(
    path: Path,
    country: str,
    *,
    policy: Path | None = None,
    bootstrap: str = "127.0.0.1:9092",
    topic: str = DEFAULT_TOPIC,
    secretariat_pem: str | None = None,
) -> Home:
    """Create a member node's home: config, store, policy, signing and encryption
    keys, and (when given) the pinned Secretariat key."""
    country = country.upper()
    if not is_iso3(country):
        raise ConfigError(f"not an ISO 3166-1 alpha-3 country code: {country!r}")
    policy_file = policy or policies_dir() / f"{country}.yaml"
    loaded = load_policy(policy_file, regional_floor())
    if loaded.country != country:
        raise ConfigError(f"{policy_file} is {loaded.country}'s policy, not {country}'s")
    _fresh_home(path)
    home = Home(
        path,
        HomeConfig(
            role="member",
            country=country,
            policy=str(policy_file.resolve()),
            kafka=KafkaSettings(bootstrap=bootstrap, topic=topic),
        ),
    )
    trust.generate_member_keys(home)
    encounters.create_pseudonym_key(home)
    if secretariat_pem is not None:
        trust.pin_secretariat(home, secretariat_pem)
    with NodeStore(home.store_path) as store:
        store.assign_identity(country)
    ReferenceStore(home.store_path).close()
    home.save()
    return home


def init_aggregator(
    path: Path, *, bootstrap: str = "127.0.0.1:9092", topic: str = DEFAULT_TOPIC
) -> Home:
    """Create the Secretariat's aggregator home."""
    _fresh_home(path)
    home = Home(
        path,
        HomeConfig(role="aggregator", kafka=KafkaSettings(bootstrap=bootstrap, topic=topic)),
    )
    PictureStore(home.store_path).close()
    home.save()
    drafts.init_secretariat_keys(home)
    return home


def member_store(home: Home, *, staging: bool = True) -> NodeStore:
    """The member's store, refused (``StoreLostHistory``) if it is not this
    home's or lost its history (node.store.identity); with ``staging``, also
    while a restored store waits for ``recover-revisions``."""
    store = NodeStore(_member(home).store_path)
    try:
        store.verify_identity(home.country, staging=staging)
    except BaseException:
        store.close()
        raise
    return store


def export_public_key(home: Home) -> str:
    _member(home)
    if not home.public_key_path.is_file():
        raise ConfigError(f"no public key at {home.public_key_path}")
    return home.public_key_path.read_text(encoding="ascii")


def add_member(
    home: Home, country: str, pem_file: Path, encryption_pem_file: Path | None = None
) -> str:
    """Add a member's public signing key (and encryption key) to the manifest and
    sign it, so the aggregator trusts it at once. Returns the signing key id."""
    _aggregator(home)

    def read(path: Path) -> str:
        return read_key_text(path)

    key_id = drafts.add_member(
        home,
        country,
        read(pem_file),
        encryption_pem=read(encryption_pem_file) if encryption_pem_file else None,
    )
    drafts.sign_draft(home)
    return key_id


# -- member node ----------------------------------------------------------------


def home_policy(home: Home) -> Policy:
    """The home's policy, rejected if weaker than the regional floor."""
    return load_policy(_member(home).policy_path, regional_floor())


def regional_floor() -> RegionalFloor:
    return load_floor(regional_policy_path())


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
    _member(home)
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


def own_key_problem(home: Home) -> str | None:
    """Why this node must not sign with its key, from the manifest it holds
    (revoked, or expired now), or None. A home with no manifest, or one that
    does not list the key (not enrolled yet), has nothing to say here:
    ``doctor`` reports those."""
    if not home.manifest_path.exists() or not home.public_key_path.is_file():
        return None
    try:
        manifest = trust.current_manifest(home)
        key_id = key_id_for(home.country, load_public_pem(home.public_key_path.read_bytes()))
    except CorredorError:
        return None  # doctor names a manifest that does not verify
    found = manifest.signing_key(key_id)
    if found is None:
        return None
    entry = found[1]
    state = entry.state_at(datetime.now(UTC))
    if state == "valid":
        return None
    when = entry.revoked_at if state == "revoked" else entry.valid_until
    stamp = when.isoformat(timespec="seconds") if when is not None else "?"
    return (
        f"this node's signing key {key_id} is {state} (since {stamp}) in the federation's "
        f"manifest, serial {manifest.serial}: the aggregator trusts nothing it signs. "
        "Refusing to publish with it: rotate it (`corredor keys rotate`), send "
        "keys/signing.pub to the Secretariat, and run `corredor federation sync` once the "
        "new key is in the manifest"
    )


def check_own_key(home: Home) -> None:
    """Raise ``KeyNotUsable`` if the manifest revoked or expired this node's key."""
    problem = own_key_problem(home)
    if problem is not None:
        raise KeyNotUsable(problem)


def refresh_manifest(home: Home, bootstrap: str | None = None) -> None:
    """Take a newer manifest from the control topic, if the home pins the
    Secretariat's key to verify it: a revocation reaches the node before it
    publishes. A missing, unreadable or unverifiable one leaves the home's
    manifest as it is (``doctor`` reports it); so does a broker that does not
    accept a connection at once (the publish then stages and waits, as ever,
    rather than spend the client's bootstrap timeout here first)."""
    if not home.secretariat_pub_path.is_file():
        return
    try:
        health.reachable(bootstrap or home.bootstrap, timeout_s=2.0)
        _, updated = sync_manifest(home, bootstrap=bootstrap)
    except CorredorError as exc:
        log.debug("manifest not refreshed from the control topic: %s", exc)
        return
    if updated:
        log.info("took a newer manifest from %s", home.config.kafka.control_topic)


def check_federation_history(home: Home, store: NodeStore, bootstrap: str | None = None) -> None:
    """Refuse (``StoreLostHistory``) a store that never had an event
    acknowledged nor recovered its revisions while the picture topic holds
    this country's subjects: it lost its history with every file beside it
    (only the federation remembers), and its revisions would start again at 1.
    Read once per store, until its first acknowledgement; skipped when the
    broker does not answer at once (the publish cannot send either)."""
    if store.outbox_status().acked or store.has_recovered_revisions():
        return
    address = bootstrap or home.bootstrap
    try:
        health.reachable(address, timeout_s=2.0)
    except CorredorError:
        return
    known = revisions.from_picture_topic(home, address)
    if known:
        raise StoreLostHistory(
            f"{home.store_path}: this store has never published, but the picture topic "
            f"holds {len(known)} of {home.country}'s subjects, up to revision "
            f"{max(known.values())}: it lost its history. Refusing to publish: {RECOVER_HINT}"
        )


def _factory(home: Home, policy: Policy) -> EventFactory:
    key = SigningKey.load(home.country, home.signing_key_path, key_passphrase())
    return EventFactory(home.country, policy, key, event_codec(), seal_batch=home.config.seal_batch)


def plan_publication(home: Home) -> PublishPlan:
    """The events a publish would stage now, without writing anything."""
    policy = home_policy(home)
    with member_store(home, staging=False) as store:
        return prepare_flow_events(store, _factory(home, policy))


def privacy_budget(home: Home, policy: Policy | None = None) -> dict[str, dict[str, float]]:
    """Per audience of a differentially private flow exchange: the privacy loss
    spent (the largest sum over any one period, from the ledger in node.db),
    the policy's budget and what remains. Empty under suppression."""
    policy = policy or home_policy(home)
    rules = policy.exchanges.flow_statistics
    if rules.privacy is None:
        return {}
    with member_store(home, staging=False) as store:
        spent = privacy.spent_by_audience(store.privacy_charged(privacy.EXCHANGE))
    return {
        audience: {
            "spent": round(spent.get(audience, 0.0), 6),
            "budget": budget,
            "remaining": round(max(0.0, budget - spent.get(audience, 0.0)), 6),
        }
        for audience, budget in sorted(rules.privacy.budget.items())
    }


@dataclass(frozen=True)
class PublishResult:
    plan: PublishPlan
    drain: DrainResult
    outbox: OutboxStatus
    topic: str
    policy_version: str
    reference: ReferencePlan | None = None


def stage_publication(
    home: Home,
    store: NodeStore,
    policy: Policy,
    *,
    commit_chunks: bool = False,
    after_chunk: Callable[[], None] | None = None,
    stagers: int = 1,
) -> tuple[PublishPlan, Any]:
    """Plan what the policy lets out now and write it, with the ledger, to the
    outbox under the home's staging lock, so two publishes never both take the
    same revision. Returns (flow plan, reference plan).

    By default everything lands in one transaction (joining the caller's, if
    one is open). With ``commit_chunks`` the statistics and reference events
    commit first, then each chunk of encounter records in its own transaction
    with its ledger rows, so that a drainer can send what is committed while
    the rest is built; a crash between chunks leaves a consistent prefix that
    the next run completes. ``after_chunk`` runs after each chunk staged (or,
    with workers, while waiting for them). With ``stagers`` > 1 (and
    ``commit_chunks``) the encounter records are split into that many
    record-id ranges, each staged by a worker process (node.member.workers) while
    this one stages the statistics and reference events; the withdrawals
    follow once every range is in.

    Refused (``StoreLostHistory``) on a store that lost its history: its
    revisions would start again below what the aggregator has seen; and
    (``KeyNotUsable``) when the manifest revoked or expired this node's key."""
    store.verify_identity(home.country)
    check_own_key(home)
    with store.staging_lock():
        if commit_chunks:
            return _plan_and_stage(home, store, policy, after_chunk, stagers)
        with store.transaction():
            return _plan_and_stage(home, store, policy, after_chunk, 1)


def _encounter_stream(
    store: NodeStore,
    factory: EventFactory,
    keys: encounters.EncounterKeys,
    guard: EgressGuard,
    now: datetime,
    after: str = "",
    upto: str | None = None,
    withdraw: bool = True,
) -> EncounterStream:
    return EncounterStream(
        store,
        factory,
        pseudonym_key=keys.pseudonym_key,
        linker=keys.linker,
        gazetteer=encounters.gazetteer(factory.policy.country),
        guard=guard,
        now=now,
        after=after,
        upto=upto,
        withdraw=withdraw,
    )


def stage_encounter_part(
    home: Home,
    after: str,
    upto: str | None,
    now: datetime,
    *,
    identifying: frozenset[str] | None = None,
) -> tuple[EncounterPlan, list[str]]:
    """Stage the encounter records with ``after`` < record id <= ``upto``, in
    committed chunks, without withdrawals: one part of a publish staged in
    parallel (node.member.workers), run while the parent holds the staging lock.
    ``identifying``: the guard's normalised values, when the parent computed
    them. Returns the part's plan and the subjects the guard refused."""
    policy = home_policy(home)
    factory = _factory(home, policy)
    keys = encounters.EncounterKeys.load(home)
    linking = keys.linker is not None
    with NodeStore(home.store_path) as store:
        guard = (
            egress_guard(store, policy, linkage=linking)
            if identifying is None
            else EgressGuard.from_normalised(
                identifying, allowed_by_kind(policy, linkage=linking)
            )
        )
        stream = _encounter_stream(store, factory, keys, guard, now, after, upto, withdraw=False)
        for chunk in stream.chunks():
            store.stage(chunk)
        return stream.plan(), stream.refused_subjects


def _plan_and_stage(
    home: Home,
    store: NodeStore,
    policy: Policy,
    after_chunk: Callable[[], None] | None,
    stagers: int,
) -> tuple[PublishPlan, Any]:
    factory = _factory(home, policy)
    keys = encounters.EncounterKeys.load(home)
    now = datetime.now(UTC)
    # The policy that lets events out is archived before any of them.
    store.archive_policy(policy.sha256, policy.policy_id, policy.version, policy.canonical_json())
    shared = policy.exchanges.encounter_records.shared
    ranges = store.encounter_split(stagers) if shared and stagers > 1 else []
    with ExitStack() as workers:
        # Started first: their start-up overlaps the statistics planned here.
        parts = [
            workers.enter_context(StagerProcess(home.path, after, upto, now))
            for after, upto in ranges
        ]
        guard = egress_guard(store, policy, linkage=keys.linker is not None)
        plan = prepare_flow_events(store, factory, guard=guard, now=now)
        recipients = _intelligence_recipients(home, policy)
        # The guard keeps every refusal it makes: those past this mark are the
        # reference items', which count in the publish's ``refused`` too.
        mark = len(guard.refusals)
        staged, reference = plan_with_reference(
            store, factory, plan.events, FLOW_KIND, recipients=recipients, guard=guard
        )
        reference_refusals = tuple(guard.refusals[mark:])
        if staged or plan.suppression or plan.privacy:
            store.stage(staged, plan.suppression, plan.privacy)
        # The records held back depend on the flow release just staged (see
        # held_back_records): a worker starts reading only once it is committed.
        for part in parts:
            part.send_guard(guard.normalised_values)
        if parts:
            records = _finish_parts(store, factory, keys, guard, parts, now, after_chunk)
        else:
            stream = _encounter_stream(store, factory, keys, guard, now)
            for chunk in stream.chunks():
                store.stage(chunk)
                if after_chunk is not None:
                    after_chunk()
            records = stream.plan()
    plan = dataclasses.replace(
        plan,
        refused=plan.refused + len(reference_refusals) + records.refused,
        refusals=plan.refusals + reference_refusals + records.refusals,
        encounters=records,
        staged=len(staged) + records.staged,
    )
    return plan, reference


def _finish_parts(
    store: NodeStore,
    factory: EventFactory,
    keys: encounters.EncounterKeys,
    guard: EgressGuard,
    parts: list[StagerProcess],
    now: datetime,
    after_chunk: Callable[[], None] | None,
) -> EncounterPlan:
    """Wait for the stagers of every record-id range, then withdraw what no
    stored record produces any more (only the whole picture shows that)."""
    results = [part.finish(after_chunk) for part in parts]
    held = held_back_records(store, factory.policy, encounters.gazetteer(factory.policy.country))
    withdrawals = encounter_withdrawals(
        store,
        factory,
        pseudonym_key=keys.pseudonym_key,
        guard=guard,
        refused_subjects=[s for r in results for s in r.refused_subjects],
        now=now,
        held=held,
    )
    store.stage(withdrawals)
    refusals = tuple(Refusal(**d) for r in results for d in r.refused)
    return EncounterPlan(
        records=sum(r.records for r in results),
        new=sum(r.new for r in results),
        revised=sum(r.revised for r in results),
        withdrawn=len(withdrawals),
        refused=len(refusals),
        refusals=refusals,
        linkage_tokens=factory.policy.exchanges.encounter_records.linkage_tokens
        and keys.linker is not None,
        held_back=len(held),
    )


def ensure_shared_topic(home: Home, address: str, security: dict[str, Any] | None) -> None:
    """Create the shared topic with the home's partitions and replication if missing,
    stamped with the broker's append time and keeping messages as long as the
    regional floor lets any policy retain them (``shared_topic_configs``)."""
    settings = home.config.kafka
    ensure_topic(
        address,
        settings.topic,
        partitions=settings.partitions,
        replication=settings.replication,
        configs=shared_topic_configs(regional_floor().max_retention_days),
        security=security,
    )


def open_sink(home: Home, bootstrap: str | None = None, **options: Any) -> EventSink:
    """The node's producer on the shared topic (created if missing)."""
    address = bootstrap or home.bootstrap
    security = home.kafka_security()
    sink_class: type[KafkaSink | ConfluentSink] = (
        ConfluentSink if home.config.kafka.client == "confluent" else KafkaSink
    )
    # Made before the topic is ensured: a missing confluent extra fails first.
    sink = sink_class(
        address,
        home.config.kafka.topic,
        client_id=f"corredor-{home.country}",
        security=security,
        **options,
    )
    ensure_shared_topic(home, address, security)
    return sink


def open_source(home: Home, bootstrap: str | None = None) -> KafkaSource | ConfluentSource:
    """The aggregator's consumer of the shared topic, in its group, on the
    library ``kafka.client`` names; it connects when opened or first polled."""
    settings = home.config.kafka
    return group_source(
        settings.client,
        bootstrap or home.bootstrap,
        settings.topic,
        settings.group_id,
        security=home.kafka_security(),
    )


def read_home_topic(home: Home, topic: str, bootstrap: str | None = None) -> list[Message]:
    """Every record on ``topic`` (no group), read with the home's ``kafka.client``."""
    return read_topic(
        home.config.kafka.client,
        bootstrap or home.bootstrap,
        topic,
        security=home.kafka_security(),
    )


def _stagers() -> int:
    """Staging processes for an overlapped publish: one per core, at most four."""
    return max(1, min(4, os.cpu_count() or 1))


#: Above this much work (outbox rows waiting plus raw records to turn into
#: EncounterRecord events), ``publish`` drains from a second process while it
#: stages; below it, starting that process costs more than it saves.
OVERLAP_FROM = 20_000


def _worth_overlapping(store: NodeStore, policy: Policy) -> bool:
    work = store.outbox_status().pending
    if policy.exchanges.encounter_records.shared:
        work += store.count_encounters()
    return work >= OVERLAP_FROM


def publish(
    home: Home,
    *,
    bootstrap: str | None = None,
    progress: Callable[[int], None] | None = None,
    overlap: bool | None = None,
    stagers: int | None = None,
) -> PublishResult:
    """Stage what the policy lets out, then drain the outbox to Kafka.

    With ``overlap`` (by default, when there is enough work: ``OVERLAP_FROM``)
    a second process drains while this one stages in committed chunks, so the
    two halves run on two cores; the outbox is still the only hand-over.
    ``stagers`` processes (by default one per core, overlapped publishes only)
    stage the encounter records in parallel.

    First it takes a newer manifest from the control topic, if there is one,
    and refuses (``KeyNotUsable``) to publish with a key that it revokes or
    that has expired: nothing is staged or sent."""
    policy = home_policy(home)
    refresh_manifest(home, bootstrap)
    check_own_key(home)
    with member_store(home) as store:
        check_federation_history(home, store, bootstrap)
        if overlap is None:
            overlap = _worth_overlapping(store, policy)
        if overlap:
            with BackgroundDrainer(home.path, bootstrap) as drainer:
                plan, reference = stage_publication(
                    home,
                    store,
                    policy,
                    commit_chunks=True,
                    after_chunk=lambda: drainer.report_progress(progress),
                    stagers=stagers or _stagers(),
                )
                drained = drainer.finish(progress)
        else:
            plan, reference = stage_publication(home, store, policy)
            sink = open_sink(home, bootstrap)
            try:
                drained = drain_outbox(store, sink, progress=progress)
            finally:
                sink.close()
        return PublishResult(
            plan,
            drained,
            store.outbox_status(),
            home.config.kafka.topic,
            policy.version,
            reference,
        )


def _intelligence_recipients(home: Home, policy: Policy) -> dict[str, X25519PublicKey]:
    """Who this node's intelligence reports are sealed to, from its manifest."""
    rules = policy.exchange("IntelligenceReport")
    return trust.restricted_recipients(home, rules.audiences) if rules.shared else {}


# -- aggregator -------------------------------------------------------------------


def aggregate_once(
    home: Home,
    *,
    bootstrap: str | None = None,
    progress: Callable[[int], None] | None = None,
    max_records: int = 2_000,
) -> ApplyStats:
    """Consume the shared topic up to its current end and apply it."""
    _aggregator(home)
    address = bootstrap or home.bootstrap
    security = home.kafka_security()
    ensure_shared_topic(home, address, security)
    if trust_ledger.load_founders(home) is not None:
        # Members' approvals and own revocations decide, here as on every node.
        refresh_approvals(home, address, security)
    with PictureStore(home.store_path) as store:
        aggregator = build_aggregator(home, store, event_codec(), floor=regional_floor())
        source = open_source(home, address)
        try:
            stats = consume_until_caught_up(
                aggregator, source, progress=progress, max_records=max_records
            )
        finally:
            source.close()
            aggregator.close()
        relay_restricted(home, store, address, security)
        publish_picture(home, store, address, security)
        dead_letter(home, store, address, security)
        return stats


def dead_letter_topic(home: Home) -> str:
    return dead_letter_topic_for(home.config.kafka.topic)


#: Dead letters up to this size (value and key) are copied to the dead-letter
#: topic; larger ones go there by reference. Under Kafka's default message size
#: limit (1 MiB, headers and framing included), which the dead-letter topic and
#: its producer keep even when the shared topic's limit is raised.
DEAD_LETTER_COPY_LIMIT = 1_000_000


def _dead_letter_headers(r: Rejected, extra: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return [
        ("corredor.reason", r.reason.encode()),
        ("corredor.detail", r.detail.encode()[:1000]),
        ("corredor.origin", f"{r.topic}/{r.partition}/{r.offset}".encode()),
        *extra,
    ]


def _reference(r: Rejected) -> tuple[bytes | None, bytes, list[tuple[str, bytes]], int, str]:
    """A dead letter set aside by reference: where the original is on the topic
    (and in quarantine), how big it is and its SHA-256, as a small JSON value."""
    raw = r.raw or b""
    digest = hashlib.sha256(raw).hexdigest()
    where = {
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "size": len(raw),
        "sha256": digest,
        "reason": r.reason,
    }
    headers = _dead_letter_headers(
        r,
        [
            ("corredor.by-reference", b"1"),
            ("corredor.size", str(len(raw)).encode()),
            ("corredor.sha256", digest.encode()),
        ],
    )
    key = r.key if r.key is not None and len(r.key) <= 1024 else None
    value = json.dumps(where, sort_keys=True).encode()
    return key, value, headers, len(raw), digest


def dead_letter(
    home: Home, store: PictureStore, address: str, security: dict[str, Any] | None
) -> int:
    """Copy undecodable messages, original bytes and key, to the dead-letter
    topic with their reason and origin in headers. They stay quarantined too.

    A message too large to copy (over ``DEAD_LETTER_COPY_LIMIT``, or refused by
    the broker as too large) goes by reference instead: origin, size and
    SHA-256, with the bytes kept in quarantine, so one oversized message never
    jams the step for every later one."""
    pending = store.pending_dead_letters(DEAD_LETTER_REASONS)
    if not pending:
        return 0

    def fits(r: Rejected) -> bool:
        return len(r.raw or b"") + len(r.key or b"") <= DEAD_LETTER_COPY_LIMIT

    copies = [(i, r) for i, r in pending if fits(r)]
    large = [(i, r) for i, r in pending if not fits(r)]
    sink = _side_topic_sink(home, dead_letter_topic(home), address, security, "dead-letters")
    copied: list[int] = []
    try:
        batches = [copies] if copies else []
        while batches:
            batch = batches.pop()
            try:
                sink.send_with_headers(
                    [(r.key, r.raw or b"", _dead_letter_headers(r, [])) for _, r in batch]
                )
                copied.extend(i for i, _ in batch)
            except RecordTooLarge:
                # The broker's limit is lower than ours: find the ones it refuses
                # (a half already acknowledged may then be copied twice).
                if len(batch) == 1:
                    large.extend(batch)
                else:
                    batches.extend([batch[len(batch) // 2 :], batch[: len(batch) // 2]])
                _close_quietly(sink)
                sink = _side_topic_sink(
                    home, dead_letter_topic(home), address, security, "dead-letters"
                )
        references = [(i, _reference(r)) for i, r in large]
        if references:
            sink.send_with_headers([(k, v, h) for _, (k, v, h, _, _) in references])
    finally:
        _close_quietly(sink)
    store.mark_dead_lettered(copied)
    store.mark_dead_lettered_by_reference(
        [(i, size, digest) for i, (_, _, _, size, digest) in references]
    )
    return len(pending)


def _close_quietly(sink: KafkaSink) -> None:
    with contextlib.suppress(TransportError):
        sink.close()


def relay_restricted(
    home: Home, store: PictureStore, address: str, security: dict[str, Any] | None
) -> int:
    """Send restricted events, still sealed, to the picture topic members read.
    Rows are marked only on the broker's acknowledgement (an outbox, again)."""
    pending = store.pending_relay()
    if not pending:
        return 0
    sink = _side_topic_sink(home, _picture_topic(home), address, security, "relay")
    try:
        sink.send_batch([(k or b"", v) for _, k, v in pending])
    finally:
        sink.close()
    store.mark_relayed([seq for seq, _, _ in pending])
    return len(pending)


def publish_picture(
    home: Home, store: PictureStore, address: str, security: dict[str, Any] | None
) -> int:
    """Send the events every member may see, their producers' signed bytes
    unchanged, to the picture topic, keyed by subject (the topic is compacted:
    the newest revision of each subject stays). Embargoed events wait. Each
    member verifies the signatures itself (``node.aggregator.picture_sync``)."""
    pending = store.pending_picture(datetime.now(UTC))
    tombstones = store.pending_tombstones()
    if not pending and not tombstones:
        return 0
    sink = _side_topic_sink(home, _picture_topic(home), address, security, "picture")
    try:
        # With the shared topic's append time: members judge keys against it.
        sink.send_with_headers(
            [
                (
                    subject.encode("utf-8"),
                    value,
                    [] if at is None else [(APPENDED_AT_HEADER, str(at).encode("ascii"))],
                )
                for _, subject, value, at in pending
            ]
        )
        # Purged subjects: the key with no value, so compaction removes them.
        sink.send_with_headers([(s.encode("utf-8"), None, []) for s in tombstones])
    finally:
        sink.close()
    store.mark_picture_published([seq for seq, _, _, _ in pending])
    store.mark_tombstoned(tombstones)
    return len(pending)


def _side_topic_sink(
    home: Home, topic: str, address: str, security: dict[str, Any] | None, role: str
) -> KafkaSink:
    """A producer on one of the aggregator's own single-partition topics."""
    ensure_topic(
        address, topic, partitions=1, replication=home.config.kafka.replication, security=security
    )
    return KafkaSink(address, topic, client_id=f"corredor-{role}", security=security)


def read_inbox(home: Home, *, bootstrap: str | None = None) -> InboxResult:
    """Restricted events addressed to this member, verified and decrypted."""
    _member(home)
    messages = read_home_topic(home, _picture_topic(home), bootstrap)
    return open_inbox(
        messages, event_codec(), trust.key_directory(home), trust.load_encryption_key(home)
    )


def open_home(path: Path | None) -> Home:
    if path is None:
        raise ConfigError("no home given: pass --home DIR or set CORREDOR_HOME")
    return load_home(path)


def remove_home(path: Path) -> None:
    """Delete a home created by the demo (only if it is one)."""
    if (path / "corredor.yaml").is_file():
        shutil.rmtree(path)


def home_status(home: Home) -> dict[str, object]:
    """What an operator checks first: stored data, outbox, what was set aside."""
    if home.is_aggregator:
        with PictureStore(home.store_path) as store:
            counts = store.counts()
            return {
                "role": "aggregator",
                "topic": home.config.kafka.topic,
                **counts,
                "dead_lettered": store.dead_letter_count(),
                "dead_lettered_by_reference": store.dead_letter_reference_count(),
                "revoked_events": store.revoked_count(),
                "revocations": store.revocations(),
                "restricted_relayed": store.restricted_count(),
                "reference": store.view_counts(),
                "rejected_by_reason": store.rejected_by_reason(),
                "rejected_messages": store.rejected(limit=50),
                # Per country and view: the share of its encounters in exact
                # numbers of the Secretariat's own picture (issue 16).
                "coverage": _coverage(store),
            }
    with member_store(home, staging=False) as store:
        outbox = store.outbox_status()
        identity = store.identity()
        return {
            "role": "member",
            "country": home.country,
            "store_id": identity.store_id if identity is not None else None,
            "schema_version": store.schema_version,
            "revisions_pending_recovery": identity.pending_recovery if identity else None,
            "topic": home.config.kafka.topic,
            "policy_version": home_policy(home).version,
            "records": store.count_encounters(),
            "outbox_pending": outbox.pending,
            "outbox_acknowledged": outbox.acked,
            "oldest_pending_at": _iso(outbox.oldest_pending_at),
            "last_acknowledged_at": _iso(outbox.last_acked_at),
            "reference_items": _reference_items(home),
        }


def _coverage(store: PictureStore) -> list[dict[str, Any]]:
    from node.report.audience import Scope
    from node.report.regional import admitted_cells, coverage

    return coverage(admitted_cells(store, Scope("TS")))


def _reference_items(home: Home) -> dict[str, int]:
    """Reference records held (not withdrawn), by kind."""
    with ReferenceStore(home.store_path) as references:
        return {model.KIND: references.count(model.KIND) for model in REFERENCE_MODELS}


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


# -- the manifest on the control topic -------------------------------------------------

MANIFEST_KEY = b"manifest"


def _control_topic(home: Home) -> str:
    return home.config.kafka.control_topic


def _ensure_control_topic(home: Home, address: str, security: dict[str, Any] | None) -> str:
    """The compacted control topic (manifest, linkage keys), created if missing."""
    topic = _control_topic(home)
    ensure_topic(
        address,
        topic,
        partitions=1,
        replication=home.config.kafka.replication,
        configs={"cleanup.policy": "compact"},
        security=security,
    )
    return topic


def _put_on_control_topic(home: Home, key: bytes, value: bytes, bootstrap: str | None) -> None:
    """One statement under ``key`` on the control topic, created if missing."""
    address = bootstrap or home.bootstrap
    security = home.kafka_security()
    publish_record(
        address, _ensure_control_topic(home, address, security), key, value, security=security
    )


def publish_manifest(home: Home, *, bootstrap: str | None = None) -> str:
    """Put the Secretariat's current signed manifest on the compacted control topic."""
    _aggregator(home)
    address = bootstrap or home.bootstrap
    security = home.kafka_security()
    topic = _ensure_control_topic(home, address, security)
    value = home.manifest_path.read_bytes()
    serial = trust.current_manifest(home).serial
    # The history stays on the compacted topic (one key per serial), so a node
    # that missed serials walks the hash chain from its last head. Serials
    # signed but never published go out too (the same bytes again are harmless).
    published = set(_published_serials(address, topic, security))
    for signed in drafts.signed_history(home):
        older = Manifest.model_validate_json(signed.payload).serial
        if older < serial and older not in published:
            data = signed.model_dump_json(indent=2).encode("utf-8")
            publish_record(address, topic, history_key(older), data, security=security)
    publish_record(address, topic, history_key(serial), value, security=security)
    publish_record(address, topic, MANIFEST_KEY, value, security=security)
    return topic


def _published_serials(
    address: str, topic: str, security: dict[str, Any] | None
) -> list[int]:
    out = []
    for msg in read_all(address, topic, security=security):
        if msg.key is not None and msg.key.startswith(b"manifest/"):
            tail = msg.key.split(b"/", 1)[1]
            if tail.isdigit():
                out.append(int(tail))
    return out


def history_key(serial: int) -> bytes:
    return f"manifest/{serial:012d}".encode("ascii")


APPROVAL_PREFIX = b"approval/"


@dataclass
class SyncResult:
    manifest: Manifest
    updated: bool
    changes: list[str]  # the diff against the manifest held before
    view: membership.TrustView
    approvals_read: int = 0


def sync_manifest(home: Home, *, bootstrap: str | None = None) -> tuple[Manifest, bool]:
    """Take the newest manifest from the control topic if the pinned key signed it."""
    result = sync_federation(home, bootstrap=bootstrap)
    return result.manifest, result.updated


def _signed(value: bytes | None, topic: str, key: bytes) -> SignedManifest:
    try:
        return SignedManifest.model_validate_json(value or b"")
    except ValueError as exc:
        raise ConfigError(f"the record {key.decode()} on {topic} is malformed: {exc}") from exc


def sync_federation(home: Home, *, bootstrap: str | None = None) -> SyncResult:
    """Read the control topic: approvals, the manifest history from this home's
    last head to the newest, each verified (pinned key, hash chain); then the
    trust view and what changed. An equivocation raises ManifestAlarm and
    leaves the last good manifest current."""
    address = bootstrap or home.bootstrap
    topic = _control_topic(home)
    records = read_all(address, topic, security=home.kafka_security())
    old = trust.current_manifest(home) if home.manifest_path.exists() else None
    old_view = trust.trust_view(home, old) if old is not None else None
    read = _store_statements(home, records)
    # Every manifest record, in the order written (not only the newest per
    # key): two manifests with one serial are seen even before compaction, and
    # a record someone without the Secretariat's key wrote is skipped.
    found = updated = False
    for msg in records:
        if msg.key is None or not msg.value:
            continue
        if msg.key != MANIFEST_KEY and not msg.key.startswith(b"manifest/"):
            continue
        try:
            signed = _signed(msg.value, topic, msg.key)
            updated |= trust.accept_manifest(home, signed)[1]
            found = True
        except (ConfigError, SignatureInvalid, ValueError) as exc:
            key = msg.key.decode("utf-8", "replace")
            log.warning("skipped %s at offset %d on %s: %s", key, msg.offset, topic, exc)
    if not found:
        raise ConfigError(f"no manifest on {topic} yet")
    anchors.collect(home, anchors.parse(records))
    manifest = trust.current_manifest(home)
    view = trust.trust_view(home, manifest)
    # What changed since the manifest held before, then what still lacks
    # quorum (printed on every sync until it is resolved).
    changes = membership.diff(old, old_view, manifest, view)
    return SyncResult(manifest, updated, changes, view, read)


REVOCATION_PREFIX = b"revocation/"


def _store_statements(home: Home, records: list[Any]) -> int:
    """Keep the approvals and self-revocations read (verified when the trust
    view is computed); returns how many were new."""
    new = 0
    for msg in records:
        if msg.key is None or not msg.value:
            continue
        try:
            if msg.key.startswith(APPROVAL_PREFIX):
                approval = statements.Approval.model_validate_json(msg.value)
                new += trust_ledger.store_approval(home, approval)
            elif msg.key.startswith(REVOCATION_PREFIX):
                revocation = statements.SelfRevocation.model_validate_json(msg.value)
                new += trust_ledger.store_revocation(home, revocation)
        except ValueError:
            continue
    return new


def refresh_approvals(home: Home, address: str, security: dict[str, Any] | None) -> int:
    """Keep the approvals and revocations on the control topic in this home."""
    return _store_statements(home, read_all(address, _control_topic(home), security=security))


def revoke_own_key(
    home: Home, key_id: str | None = None, *, bootstrap: str | None = None
) -> statements.SelfRevocation:
    """A member revokes its own key, on the control topic: no quorum needed."""
    revocation = trust.revoke_own(_member(home), key_id)
    key = REVOCATION_PREFIX + f"{revocation.country}/{revocation.key_id}".encode("ascii")
    _put_on_control_topic(home, key, revocation.to_json().encode("utf-8"), bootstrap)
    return revocation


def approve_change(home: Home, change_id: str, *, bootstrap: str | None = None) -> Any:
    """Sign this member's approval of a pending change and put it on the control
    topic, where every node (and the Secretariat) reads it."""
    approval = trust.approve(_member(home), change_id)
    key = APPROVAL_PREFIX + f"{approval.change_id}/{approval.approver}".encode("ascii")
    _put_on_control_topic(home, key, approval.to_json().encode("utf-8"), bootstrap)
    return approval


# -- the regional linkage key on the control topic ------------------------------------

LINKAGE_KEY = b"linkage-key"


def share_linkage_key(home: Home, *, bootstrap: str | None = None) -> list[str]:
    """Publish this node's linkage key, sealed to each member, on the control topic.
    The Secretariat relays the topic but cannot open the bundle."""
    bundle, countries = linkage_keys.bundle_linkage_key(_member(home))
    _put_on_control_topic(home, LINKAGE_KEY, bundle.to_json().encode("utf-8"), bootstrap)
    return countries


def sync_linkage_key(home: Home, *, bootstrap: str | None = None) -> tuple[str, bool]:
    """Take the linkage key bundle from the control topic, verified and opened."""
    value = read_latest(
        bootstrap or home.bootstrap,
        _control_topic(home),
        LINKAGE_KEY,
        security=home.kafka_security(),
    )
    if value is None:
        raise ConfigError("no linkage key has been shared on the control topic yet")
    return linkage_keys.accept_linkage_bundle(_member(home), KeyBundle.from_json(value))


# -- audit heads anchored on the control topic ---------------------------------------


def publish_audit_head(home: Home, *, bootstrap: str | None = None) -> anchors.HeadStatement:
    """Sign this home's audit head (with the heads it witnessed of others) and
    put it on the control topic."""
    statement = anchors.own_statement(home)
    key = anchors.HEAD_PREFIX + statement.party.encode("ascii")
    _put_on_control_topic(home, key, statement.model_dump_json().encode(), bootstrap)
    return statement


def federation_anchors(home: Home, *, bootstrap: str | None = None) -> list[tuple[str, str]]:
    """(witness, "seq:hash") of this home's audit head as other parties signed it."""
    address = bootstrap or home.bootstrap
    records = read_all(address, _control_topic(home), security=home.kafka_security())
    statements = anchors.parse(records)
    anchors.collect(home, statements)
    return anchors.witnessed_anchors(home, statements)
