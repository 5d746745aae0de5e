"""Sealed reports in standard form, with less metadata, on the real broker.

- **Interoperability.** A report is opened here with pyca/cryptography's HPKE
  (RFC 9180) and AES-GCM only, parsing the documented framing itself: no
  Corredor code touches the bytes.
- **Metadata.** A scan of every topic finds no recipient country code in any
  sealed report, and two reports whose plaintexts differ by 50 bytes have the
  same ciphertext length.
- **RFC 8785.** The manifest's hash is reproduced by a canonicaliser written
  here from the RFC, not by the `rfc8785` package Corredor uses.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from node.aggregator.run import aggregate_once
from node.config import Home, policies_dir
from node.crypto.keys import EncryptionKey
from node.crypto.sealing import seal_v1
from node.federation import drafts
from node.federation import manifest as fed
from node.federation.control import publish_manifest, sync_manifest
from node.home import event_codec
from node.member.intake import ingest
from node.member.member_home import init_member
from node.member.publish import publish
from node.policy.loader import load_policy
from node.transport.kafka_consumer import read_all
from tests.factories import aggregator_for

SUMMARY = "Lancha Azul moves groups from Necocli to Carreto at night. "


# -- an independent HPKE opener (RFC 9180 via pyca/cryptography only) ----------------


def open_report(body: bytes, private_pem: bytes, aad: bytes) -> bytes | None:
    """Framing (docs/security.md): 0x02 | u16 count | count x 80-byte HPKE
    entries | 12-byte nonce | AES-256-GCM ciphertext; padding 0x80 0x00*."""
    assert body[0] == 2
    (count,) = struct.unpack(">H", body[1:3])
    entries = [body[3 + 80 * i : 3 + 80 * (i + 1)] for i in range(count)]
    rest = body[3 + 80 * count :]
    nonce, ciphertext = rest[:12], rest[12:]
    private = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(private, X25519PrivateKey)
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    for entry in entries:
        try:
            key = suite.decrypt(entry, private, info=b"corredor/v2 content key|" + aad)
        except InvalidTag:
            continue
        padded = AESGCM(key).decrypt(nonce, ciphertext, aad)
        stripped = padded.rstrip(b"\x00")
        assert stripped.endswith(b"\x80")
        return stripped[:-1]
    return None


def event_aad(event_id: str, producer: str, kind: str, subject: str, revision: int) -> bytes:
    """The associated data, as docs/security.md states it."""
    return f"{event_id}|{producer}|{kind}|{subject}|{revision}".encode()


# -- an independent RFC 8785 canonicaliser -----------------------------------------


def _es6_number(x: float | int) -> str:
    """ECMAScript Number::toString (RFC 8785 section 3.2.2.3)."""
    if isinstance(x, bool):
        raise TypeError
    if isinstance(x, int):
        x = float(x) if abs(x) >= 2**53 else x
        if isinstance(x, int):
            return str(x)
    if not math.isfinite(x):
        raise ValueError("not representable in JSON")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    # Shortest round-trip digits and exponent from repr.
    mantissa, _, exp = repr(abs(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    every = whole + frac
    lead = len(every) - len(every.lstrip("0"))
    # value = 0.DIGITS x 10^point
    point = len(whole) + (int(exp) if exp else 0) - lead
    digits = every[lead:].rstrip("0") or "0"
    k, n = len(digits), point
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    tail = digits[0] + ("." + digits[1:] if k > 1 else "")
    return sign + tail + "e" + ("+" if e >= 0 else "-") + str(abs(e))


def _es6_string(s: str) -> str:
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jcs(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return _es6_number(value)
    if isinstance(value, str):
        return _es6_string(value)
    if isinstance(value, list):
        return "[" + ",".join(jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        # Keys sorted by their UTF-16 code units.
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(_es6_string(k) + ":" + jcs(value[k]) for k in keys) + "}"
    raise TypeError(type(value))


def test_the_test_canonicaliser_matches_the_rfc_example() -> None:
    """RFC 8785 section 3.2.2's example, so the reproduction below means something."""
    data = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    assert jcs(data) == (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert jcs({"\u20ac": 1, "\r": 2, "\U0001f600": 3, "\ufb33": 4}) == (
        '{"\\r":2,"€":1,"\U0001f600":3,"\ufb33":4}'
    )


# -- the federation ----------------------------------------------------------------


def _home(tmp_path: Path, country: str, bootstrap: str, topic: str, policy: Path | None) -> Home:
    home = init_member(
        tmp_path / country.lower(), country, policy=policy, bootstrap=bootstrap, topic=topic
    )
    home.config.kafka.control_topic = f"{topic}.control"
    home.save()
    return home


def _intel_policy(tmp_path: Path) -> Path:
    data = yaml.safe_load((policies_dir() / "CRI.yaml").read_text(encoding="utf-8"))
    data["exchanges"]["intelligence"] = {
        "shared": True,
        "legal_basis": "Illustrative: intelligence-sharing memorandum",
        "audiences": ["GTM", "MEX"],
        "purposes": ["anti-smuggling"],
        "retention_days": 365,
    }
    path = tmp_path / "CRI-intel.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def published(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> tuple[dict[str, Home], list[bytes]]:
    """CRI sends two reports to GTM and MEX whose summaries differ by 50 bytes."""
    cri = _home(tmp_path, "CRI", kafka_bootstrap, topic, _intel_policy(tmp_path))
    gtm = _home(tmp_path, "GTM", kafka_bootstrap, topic, None)
    mex = _home(tmp_path, "MEX", kafka_bootstrap, topic, None)
    pan = _home(tmp_path, "PAN", kafka_bootstrap, topic, None)
    agg = aggregator_for(tmp_path, [cri, gtm, mex, pan], topic=topic)
    agg.config.kafka.bootstrap = kafka_bootstrap
    agg.config.kafka.group_id = group_id
    agg.config.kafka.control_topic = f"{topic}.control"
    agg.save()
    draft = drafts.load_draft(agg)
    topics = draft.topics.model_copy(
        update={"control": f"{topic}.control", "picture": f"{topic}.picture"}
    )
    drafts.save_draft(agg, draft.model_copy(update={"topics": topics}))
    drafts.sign_draft(agg)
    publish_manifest(agg)
    for m in (cri, gtm, mex, pan):
        sync_manifest(m)
    reports = []
    for i, extra in enumerate((0, 50)):
        summary = (SUMMARY * 4)[:200] + "x" * extra
        reports.append(
            {
                "reporting_country": "CRI",
                "report_id": f"CRI-INT-2024-00{i}",
                "title": "Operacion Garza",
                "category": "SMUGGLING_ROUTE",
                "summary": summary,
                "countries_involved": ["COL", "PAN", "CRI"],
                "period_start": "2024-02-01",
                "confidence": "MEDIUM",
            }
        )
    path = tmp_path / "intel.json"
    path.write_text(json.dumps(reports), encoding="utf-8")
    assert ingest(cri, path).stored == 2
    assert publish(cri).drain.acknowledged >= 2
    assert aggregate_once(agg).rejected_total == 0
    values = []
    for t in (topic, f"{topic}.picture", f"{topic}.control"):
        values += [m.value for m in read_all(kafka_bootstrap, t) if m.value]
    return {"CRI": cri, "GTM": gtm, "MEX": mex, "PAN": pan, "TS": agg}, values


def _sealed_reports(values: list[bytes]) -> list[tuple[bytes, bytes, bytes]]:
    """(message value, sealed body, aad) of each intelligence report seen."""
    codec = event_codec()
    out = []
    for value in values:
        try:
            env = codec.decode_envelope(codec.split_signed(value)[0])
        except Exception:  # control-topic JSON, not an event
            continue
        if env.kind == "IntelligenceReport" and env.body is not None:
            aad = event_aad(env.event_id, env.producer, env.kind, env.subject, env.revision)
            out.append((value, env.body, aad))
    return out


def test_a_report_opens_with_off_the_shelf_hpke(
    published: tuple[dict[str, Home], list[bytes]],
) -> None:
    homes, values = published
    reports = _sealed_reports(values)
    assert len(reports) >= 2
    for name in ("GTM", "MEX"):
        pem = homes[name].encryption_key_path.read_bytes()
        for _, body, aad in reports:
            plain = open_report(body, pem, aad)
            assert plain is not None and SUMMARY[:40].encode() in plain
    outsider = homes["PAN"].encryption_key_path.read_bytes()
    assert all(open_report(body, outsider, aad) is None for _, body, aad in reports)


def test_no_recipient_code_on_any_topic_and_lengths_hide_a_50_byte_edit(
    published: tuple[dict[str, Home], list[bytes]],
) -> None:
    homes, values = published
    reports = _sealed_reports(values)
    assert reports
    for value, body, _ in reports:
        outside = value.replace(body, b"")
        for code in (b"GTM", b"MEX"):
            assert code not in outside, code  # not in the envelope (audiences, keys...)
            assert code + b":" not in body  # no key id in the box
    # Positive control: the old format did name them, and the scan sees it.
    gtm = EncryptionKey.generate("GTM")
    legacy = seal_v1(b"x", {gtm.key_id: gtm.public}, b"aad").to_bytes()
    assert b"GTM:" in legacy

    lengths = {}
    pem = homes["GTM"].encryption_key_path.read_bytes()
    for _, body, aad in reports:
        plain = open_report(body, pem, aad)
        assert plain is not None
        lengths[len(plain)] = len(body)
    assert len(lengths) == 2
    short, long = sorted(lengths)
    assert long - short == 50
    assert lengths[short] == lengths[long]


def test_manifest_hash_is_reproduced_by_an_independent_rfc8785(tmp_path: Path) -> None:
    members = [init_member(tmp_path / c.lower(), c) for c in ("PAN", "GTM")]
    agg = aggregator_for(tmp_path, members)
    # A name with characters whose canonical forms differ between encoders.
    draft = drafts.load_draft(agg)
    odd = 'Panamá \u2028 "ñ" \\ \x07 \U0001f600'
    members_now = [
        m.model_copy(update={"name": odd}) if m.country == "PAN" else m for m in draft.members
    ]
    drafts.save_draft(agg, draft.model_copy(update={"members": members_now}))
    drafts.sign_draft(agg)
    signed = json.loads(agg.manifest_path.read_text(encoding="utf-8"))
    payload = signed["payload"]
    data = json.loads(payload)
    assert data["version"] == 2 and data["prev_sha256"]
    assert jcs(data) == payload
    assert hashlib.sha256(jcs(data).encode("utf-8")).hexdigest() == fed.payload_sha256(
        fed.read_signed(agg.manifest_path)
    )


@pytest.mark.parametrize("country", ["PAN", "MEX", "USA"])
def test_policy_hash_is_reproduced_by_an_independent_rfc8785(country: str) -> None:
    """The `sha256` every event names for its policy: the RFC 8785 form of the
    policy's data, reproduced here without Corredor's canonicaliser. PAN's and
    MEX's legal texts hold accented letters, where RFC 8785 and Python's
    default JSON (which escapes them) part ways."""
    policy = load_policy(policies_dir() / f"{country}.yaml")
    data = json.loads(policy.canonical_json())
    assert jcs(data) == policy.canonical_json()
    assert hashlib.sha256(jcs(data).encode("utf-8")).hexdigest() == policy.sha256
