"""The online folder over real HTTP (uvicorn on loopback): audiences, the API
against `report`, users, and attacks: throttled sign-in, forged cookies, CSRF,
path traversal, SQL injection in filters and oversized requests, each refused
while the server keeps serving. (Browser tests: test_folder_browser.py.)"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from node.cli import main
from node.config import load_home
from node.crypto.keys import EncryptionKey
from node.crypto.sealing import seal
from node.errors import ConfigError
from node.folder import data as folder_data
from node.folder.accounts import FolderDB
from node.folder.pages import intelligence_page
from node.folder.session import Throttle
from node.operator.serve import make_server
from node.report.sdmx import COLUMNS
from node.report.sdmx_structure import structure_xml
from node.store.picture import PictureStore
from tests.factories import member_with_data
from tests.folder_support import (
    GTM_REPORT,
    PAN_REPORT,
    PASSWORD,
    Federation,
    build_federation,
    client,
    close_clients,
    expected_public,
    served,
    sign_in,
)

THROTTLE_N = 4


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    close_clients()


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Federation:
    return build_federation(tmp_path_factory.mktemp("folder"))


@pytest.fixture(scope="module")
def base(fed: Federation) -> Iterator[str]:
    with served(fed, throttle=Throttle(per_user=THROTTLE_N, per_client=1000, window_s=600)) as url:
        yield url


def _report(fed: Federation, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["--home", str(fed.home.path), "report", *args])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.output)
    return report


def _csrf(form: str) -> str:
    """The CSRF token of a sign-in form."""
    token = re.search(r"name='csrf' value='([^']+)'", form)
    assert token, form
    return token.group(1)


def _healthy(base: str) -> None:
    assert httpx.get(base + "/healthz").status_code == 200


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- who sees what ----------------------------------------------------------------------


def test_unauthenticated_calls_get_401_and_pages_ask_to_sign_in(base: str) -> None:
    for path in (
        "/api/flows",
        "/api/corridors",
        "/api/alerts",
        "/api/reference/health",
        "/api/releases/PAN",
        "/download/flows.csv",
    ):
        resp = httpx.get(base + path)
        assert resp.status_code == 401, path
        assert "flows" not in resp.json() or resp.json().get("error")
    resp = httpx.get(base + "/flows")
    assert resp.status_code == 303 and resp.headers["location"] == "/signin"
    assert httpx.get(base + "/healthz").text.startswith("ok")
    doc = httpx.get(base + "/api/openapi.json").json()
    assert {
        "/api/flows",
        "/api/corridors",
        "/api/alerts",
        "/api/reference/{kind}",
        "/api/releases/{country}",
        "/healthz",
    } <= set(doc["paths"])


@pytest.mark.parametrize(
    "name,audience", [("ana", "TS"), ("pan-stats", "PAN"), ("iom-desk", "IOM")]
)
def test_api_flows_is_report_json_for_the_users_audience(
    fed: Federation, base: str, name: str, audience: str
) -> None:
    client = sign_in(base, name)
    got = client.get("/api/flows").json()
    want = _report(fed, "--format", "json", "--audience", audience)
    assert set(got) == set(want)
    for key in ("flows", "audience", "purpose", "events_applied", "rejected"):
        assert got[key] == want[key], key
    corridors = client.get("/api/corridors").json()
    want_c = _report(fed, "corridors", "--format", "json", "--audience", audience)
    assert corridors["legs"] == want_c["legs"] and corridors["audience"] == audience
    health = client.get("/api/reference/health").json()
    want_h = _report(fed, "health", "--format", "json", "--audience", audience)
    assert health["rows"] == want_h["rows"]


def test_a_member_does_not_see_the_secretariats_only_numbers(fed: Federation, base: str) -> None:
    ts = sign_in(base, "ana").get("/api/flows").json()["flows"]
    # The embargo holds for everyone, the Secretariat included (the old server showed
    # embargoed encounters to anyone who asked).
    assert not [
        r for r in ts if r["reporting_country"] == "PAN" and r["nationality"] == fed.embargoed_nat
    ]
    assert [r for r in ts if r["reporting_country"] == "PAN" and r["nationality"] == fed.public_nat]
    pan = sign_in(base, "pan-stats").get("/api/flows").json()["flows"]
    assert any(r["reporting_country"] == "MEX" for r in ts)
    assert not any(r["reporting_country"] == "MEX" for r in pan)  # MEX made TS-only
    assert pan  # but PAN sees the members' numbers
    iom = sign_in(base, "iom-desk").get("/api/flows").json()["flows"]
    assert {r["reporting_country"] for r in iom} <= {"CRI", "PAN"}


def test_filters_narrow_the_flows(base: str) -> None:
    client = sign_in(base, "ana")
    every = client.get("/api/flows").json()["flows"]
    periods = sorted({r["period"] for r in every})
    lo, hi = periods[2], periods[5]
    got = client.get("/api/flows", params={"country": "CRI", "from": lo, "to": hi}).json()
    want = [r for r in every if r["reporting_country"] == "CRI" and lo <= r["period"] <= hi]
    assert got["flows"] == want and want
    by_nat = client.get("/api/flows", params={"nationality": "HTI"}).json()["flows"]
    assert by_nat and {r["nationality"] for r in by_nat} == {"HTI"}
    region = client.get("/api/flows", params={"region": "Southern Asia"}).json()["flows"]
    assert region and {r["nationality"] for r in region} <= {
        "IND",
        "PAK",
        "BGD",
        "NPL",
        "AFG",
        "LKA",
        "IRN",
        "BTN",
        "MDV",
        None,
    }


def test_releases_and_receipts_by_country(fed: Federation, base: str) -> None:
    pan = sign_in(base, "pan-stats")
    own = pan.get("/api/releases/PAN").json()
    assert own["releases"] and own["subjects_by_kind"]["FlowStatistic"] > 0
    # PAN's folder page lists what the Secretariat set aside from PAN, with the reason.
    page = pan.get("/received/PAN").text
    assert "bad-signature" in page and "does not verify" in page
    assert pan.get("/received/GTM").status_code == 403
    assert pan.get("/access-log").status_code == 403
    # Another member's releases: only the events admitted to PAN (no MEX: TS-only).
    mex = pan.get("/api/releases/MEX").json()
    assert mex["subjects_by_kind"].get("FlowStatistic", 0) == 0
    ts_mex = sign_in(base, "ana").get("/api/releases/MEX").json()
    assert ts_mex["subjects_by_kind"]["FlowStatistic"] > 0
    assert pan.get("/api/releases/X%27%3B").status_code == 404


def test_intelligence_metadata_only_to_recipients(base: str) -> None:
    pan = sign_in(base, "pan-stats").get("/intelligence").text
    assert PAN_REPORT in pan and GTM_REPORT not in pan
    gtm = sign_in(base, "gtm-stats").get("/intelligence").text
    assert GTM_REPORT in gtm and PAN_REPORT not in gtm
    iom = sign_in(base, "iom-desk").get("/intelligence").text
    assert GTM_REPORT not in iom and PAN_REPORT not in iom
    assert "sealed" not in pan.replace("sealed to its recipients", "")


def test_public_visitors_only_when_enabled_and_only_public_numbers(
    fed: Federation, base: str
) -> None:
    with FolderDB(fed.folder_db) as db:
        db.set_setting("public_enabled", "0")
    assert httpx.get(base + "/api/flows").status_code == 401
    with FolderDB(fed.folder_db) as db:
        db.set_setting("public_enabled", "1")
    try:
        doc = httpx.get(base + "/api/flows").json()
        assert doc["audience"] == "public"
        got = Counter(
            {
                (r["period"], r["reporting_country"], r["nationality"]): r["count"]
                for r in doc["flows"]
            }
        )
        want = expected_public(fed.home.store_path)
        assert got == want and want
        assert {k[2] for k in got} == {fed.public_nat}
        sdmx = httpx.get(base + "/download/regional.sdmx.csv").text
        nats = {line.split(",")[4] for line in sdmx.splitlines()[1:]}
        assert nats == {fed.public_nat}
        assert httpx.get(base + "/access-log").status_code == 403
    finally:
        with FolderDB(fed.folder_db) as db:
            db.set_setting("public_enabled", "0")


def test_downloads_are_for_the_audience_and_logged(fed: Federation, base: str) -> None:
    client = sign_in(base, "pan-stats")
    sdmx = client.get("/download/flows.sdmx.csv")
    assert sdmx.status_code == 200 and "attachment" in sdmx.headers["content-disposition"]
    lines = sdmx.text.splitlines()
    assert lines[0].split(",") == list(COLUMNS)
    assert {line.split(",")[-1] for line in lines[1:]} == {"PAN"}
    assert "MEX" not in {line.split(",")[3] for line in lines[1:]}
    structure = client.get("/download/sdmx-structure.json").json()
    assert [c["id"] for c in structure["components"]] == list(COLUMNS[3:])
    # A selection with nothing released in it: a refusal that says so, no empty file.
    empty = client.get("/download/flows.sdmx.csv", params={"country": "USA"})
    assert empty.status_code == 422
    assert "no flow statistics released to audience 'PAN' match this selection" in empty.text
    message = client.get("/download/sdmx-structure.xml")
    assert message.status_code == 200
    assert message.text == structure_xml()  # the SDMX-ML 3.0 structure the CSV follows
    csv_text = client.get("/download/flows.csv", params={"country": "CRI"}).text
    assert (
        csv_text.splitlines()[0] == "period,reporting_country,nationality,nationality_region,count,"
        "status,ci95,protected,unit"
    )
    assert {line.split(",")[1] for line in csv_text.splitlines()[1:]} == {"CRI"}
    deadline = time.monotonic() + 10
    while True:
        with FolderDB(fed.folder_db) as db:
            rows = db.access_log(user="pan-stats", action="download")
        if any(r["target"].startswith("/download/flows.sdmx.csv") for r in rows):
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ts = sign_in(base, "ana").get("/access-log").text
    assert "pan-stats" in ts and "/download/flows.sdmx.csv" in ts


def test_security_headers(base: str) -> None:
    client = sign_in(base, "ana")
    for path in ("/flows", "/api/flows", "/signin", "/nowhere"):
        h = client.get(path).headers
        csp = h["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "http" not in csp  # no external source
        assert h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] == "no-referrer"
    cookie = httpx.get(base + "/signin").headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_basic_auth_for_scripts_on_loopback(base: str) -> None:
    ok = httpx.get(base + "/api/alerts", auth=("ana", PASSWORD))
    assert ok.status_code == 200 and ok.json()["audience"] == "TS"
    bad = httpx.get(base + "/api/alerts", auth=("ana", "not the password"))
    assert bad.status_code == 401 and "basic" in bad.headers["www-authenticate"].lower()
    assert httpx.get(base + "/alerts", auth=("ana", PASSWORD)).status_code == 303  # pages: no


def test_disabling_a_user_ends_their_sessions(fed: Federation, base: str) -> None:
    with FolderDB(fed.folder_db) as db:
        db.add_user("temp-user", "CRI", PASSWORD)
    client = sign_in(base, "temp-user")
    assert client.get("/api/flows").status_code == 200
    with FolderDB(fed.folder_db) as db:
        db.disable("temp-user")
    assert client.get("/api/flows").status_code == 401
    assert httpx.get(base + "/api/flows", auth=("temp-user", PASSWORD)).status_code == 401


# -- attacks ----------------------------------------------------------------------------


def test_wrong_passwords_are_throttled_and_logged_without_the_password(
    fed: Federation, base: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="corredor.folder")
    with FolderDB(fed.folder_db) as db:
        db.add_user("victim", "GTM", PASSWORD)
    attacker = client(base)
    token = _csrf(attacker.get("/signin").text)
    codes = []
    for i in range(THROTTLE_N + 2):
        resp = attacker.post(
            "/signin",
            data={"csrf": token, "username": "victim", "password": f"guess-number-{i}-xyz"},
        )
        codes.append(resp.status_code)
    assert codes[:THROTTLE_N] == [401] * THROTTLE_N
    assert codes[THROTTLE_N:] == [429, 429]
    # Throttled even with the right password; another user still signs in.
    resp = attacker.post(
        "/signin", data={"csrf": token, "username": "victim", "password": PASSWORD}
    )
    assert resp.status_code == 429
    assert sign_in(base, "gtm-stats").get("/api/flows").status_code == 200
    _healthy(base)
    assert "guess-number" not in caplog.text and PASSWORD not in caplog.text
    assert "victim" in caplog.text
    deadline = time.monotonic() + 10
    while True:
        with FolderDB(fed.folder_db) as db:
            failed = db.access_log(user="victim", action="signin-failed")
        if len(failed) >= THROTTLE_N:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    conn = sqlite3.connect(fed.folder_db)
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert "guess-number" not in dump and PASSWORD not in dump


def test_a_password_typed_as_the_user_name_is_never_logged(
    fed: Federation, base: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="corredor.folder")
    typed = "Correct-Horse-Battery-9"  # a password in the user name field
    browser = client(base)
    token = _csrf(browser.get("/signin").text)
    resp = browser.post("/signin", data={"csrf": token, "username": typed, "password": "x"})
    assert resp.status_code == 401
    assert typed not in caplog.text and "(unknown user)" in caplog.text
    conn = sqlite3.connect(fed.folder_db)
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert typed not in dump


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_tampered_session_cookies_are_refused(base: str) -> None:
    pan = sign_in(base, "pan-stats")
    cookie_name = "corredor"
    value = pan.cookies[cookie_name]
    body, mac = value.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert payload["u"] == "pan-stats"
    forged_payload = json.dumps({**payload, "u": "ana"}, separators=(",", ":")).encode()
    attempts = [
        _b64(forged_payload) + "." + mac,  # another user, old MAC
        _b64(forged_payload) + "." + _b64(b"\0" * 32),  # zero MAC
        body + "." + mac[:-2] + ("AA" if not mac.endswith("AA") else "BB"),  # flipped MAC
        body,  # no MAC
        _b64(forged_payload)
        + "."
        + _b64(__import__("hmac").new(b"guessed-secret", forged_payload, "sha256").digest()),
        "." * 3,
        "x" * 5000,
    ]
    for forged in attempts:
        forged_client = client(base, cookies={cookie_name: forged})
        resp = forged_client.get("/api/flows")
        assert resp.status_code == 401, forged[:40]
        assert forged_client.get("/access-log").status_code == 303  # to sign-in, not the log
    assert pan.get("/api/flows").status_code == 200  # the real one still works
    _healthy(base)


def test_forms_without_the_csrf_token_are_refused(base: str) -> None:
    pan = sign_in(base, "pan-stats")
    # Sign-out without a token, with a wrong one, or with the token of another session.
    other = client(base)
    other_token = _csrf(other.get("/signin").text)
    for data in ({}, {"csrf": "0" * 64}, {"csrf": other_token}):
        resp = pan.post("/signout", data=data)
        assert resp.status_code == 403
    assert pan.get("/api/flows").status_code == 200  # still signed in
    # A cross-site sign-in form (login CSRF): no session cookie of the victim's browser.
    resp = httpx.post(
        base + "/signin", data={"csrf": other_token, "username": "ana", "password": PASSWORD}
    )
    assert resp.status_code == 403
    resp = pan.post("/signout", content=b"{}", headers={"content-type": "application/json"})
    assert resp.status_code in (403, 415)
    _healthy(base)


@pytest.mark.parametrize(
    "path",
    [
        "/download/../aggregator.db",
        "/download/..%2faggregator.db",
        "/download/%2e%2e%2f%2e%2e%2fcorredor.yaml",
        "/download/..%5c..%5cfolder.db",
        "/static/../../folder.db",
        "/static/..%2f..%2fapp.py",
        "/download/%00flows.csv",
        "/download//etc/passwd",
        "/static/folder.css/../../../aggregator.db",
    ],
)
def test_path_traversal_in_downloads_is_refused(base: str, path: str) -> None:
    client = sign_in(base, "ana")
    resp = client.get(base + path)
    assert resp.status_code in (400, 404), (path, resp.status_code)
    assert b"SQLite format" not in resp.content and b"role:" not in resp.content
    assert b"import " not in resp.content and b"root:" not in resp.content
    _healthy(base)


@pytest.mark.parametrize(
    "params",
    [
        {"country": "PAN' OR '1'='1"},
        {"country": "PAN; DROP TABLE flow_cell; --"},
        {"nationality": "' UNION SELECT * FROM event_use --"},
        {"from": "2024-W01' OR 1=1 --"},
        {"region": "x') OR ('1'='1"},
    ],
)
def test_sql_injection_in_filters_is_refused(
    fed: Federation, base: str, params: dict[str, str]
) -> None:
    before = _digest(fed.home.store_path)
    client = sign_in(base, "pan-stats")
    resp = client.get("/api/flows", params=params)
    assert resp.status_code == 400 and "flows" not in resp.json()
    page = client.get("/flows", params=params)
    assert page.status_code == 400 and "flows-table" not in page.text
    assert _digest(fed.home.store_path) == before
    assert client.get("/api/flows").json()["flows"]  # the table is still there
    _healthy(base)


def test_oversized_requests_are_refused(base: str) -> None:
    client = sign_in(base, "ana")
    big = b"csrf=x&username=ana&password=" + b"a" * (2 * 1024 * 1024)
    resp = httpx.post(
        base + "/signin", content=big, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert resp.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"a" * 1024

    resp = client.post(
        "/signout", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert resp.status_code == 413
    resp = client.get("/api/flows", params={"country": "A" * 5000})
    assert resp.status_code == 414
    try:
        resp = httpx.get(base + "/healthz", headers={"x-padding": "p" * 70_000})
        assert resp.status_code in (400, 431)
    except httpx.RemoteProtocolError:
        pass  # the server dropped the connection: refused as well
    _healthy(base)
    assert client.get("/api/flows").status_code == 200


def test_the_live_store_is_never_written_and_no_key_is_read(
    fed: Federation, tmp_path: Path
) -> None:
    # A copy of the home without its keys directory, the store read-only.
    home = tmp_path / "ts"
    shutil.copytree(fed.home.path, home, ignore=shutil.ignore_patterns("keys", "folder*"))
    store = home / "aggregator.db"
    before = _digest(store)
    store.chmod(0o444)
    (home / "federation").chmod(0o555) if (home / "federation").exists() else None
    agg = load_home(home)
    local = Federation(
        agg, tmp_path / "state" / "folder.db", fed.public_nat, fed.embargoed_nat, fed.research_nat
    )
    with FolderDB(local.folder_db) as db:
        db.add_user("ana", "TS", PASSWORD)
    with served(local) as url:
        client = sign_in(url, "ana")
        for path in ("/flows", "/api/flows", "/download/report.html", "/countries/PAN"):
            assert client.get(path).status_code == 200
    assert _digest(store) == before
    assert not (home / "keys").exists()


def test_serve_refuses_a_member_home_and_half_tls(tmp_path: Path, fed: Federation) -> None:
    pan, _rows, _ = member_with_data(tmp_path, "PAN", 10)
    with pytest.raises(ConfigError, match="serve runs at the aggregator"):
        make_server(pan, "127.0.0.1", 0)
    with pytest.raises(ConfigError, match="both --tls-cert and --tls-key"):
        make_server(fed.home, "127.0.0.1", 0, tls_cert=tmp_path / "c.pem")


# -- users ------------------------------------------------------------------------------


def test_users_commands(fed: Federation, tmp_path: Path) -> None:
    db = tmp_path / "u" / "folder.db"
    runner = CliRunner()

    def users(*args: str, stdin: str | None = None) -> str:
        result = runner.invoke(
            main,
            ["--home", str(fed.home.path), "users", "--folder-db", str(db), *args],
            input=stdin,
        )
        return f"{result.exit_code}:{result.output}"

    assert (
        users("add", "maria", "--audience", "pan", stdin="a long enough pass\n")
        == "0:added maria (PAN)\n"
    )
    assert users("add", "maria", "--audience", "PAN", stdin="a long enough pass\n").startswith(
        "1:"
    ) and "already exists" in users(
        "add", "maria", "--audience", "PAN", stdin="a long enough pass\n"
    )
    out = users("add", "x", "--audience", "IMO", stdin="a long enough pass\n")
    assert out.startswith("1:") and "unknown audience 'IMO'" in out
    out = users("add", "shorty", "--audience", "TS", stdin="short\n")
    assert out.startswith("1:") and "too short" in out and "short\n" not in out[8:]
    out = users("add", "../evil", "--audience", "TS", stdin="a long enough pass\n")
    assert out.startswith("1:") and "bad user name" in out
    listed = json.loads(users("list", "--format", "json").split(":", 1)[1])
    assert listed == {
        "public_enabled": False,
        "users": [{**listed["users"][0], "name": "maria", "audience": "PAN", "disabled": False}],
    }
    with FolderDB(db) as folder:
        assert folder.authenticate("maria", "a long enough pass") is not None
        raw = folder._exec("SELECT hash FROM folder_user")[0][0]
    assert raw.startswith("$argon2id$") and "a long enough pass" not in raw
    assert users("reset", "maria", stdin="another long pass\n").startswith("0:")
    with FolderDB(db) as folder:
        assert folder.authenticate("maria", "a long enough pass") is None
        assert folder.authenticate("maria", "another long pass") is not None
    assert users("disable", "maria").startswith("0:")
    with FolderDB(db) as folder:
        assert folder.authenticate("maria", "another long pass") is None
    assert users("disable", "nobody").startswith("1:")
    assert users("public", "--enable") == "0:anonymous visitors: public audience\n"
    assert json.loads(users("list", "--format", "json").split(":", 1)[1])["public_enabled"]


def test_country_history_shows_only_admitted_revisions(fed: Federation, base: str) -> None:
    ts = sign_in(base, "ana")
    mex = ts.get("/api/releases/MEX").json()["releases"]
    subject = next(r["subject"] for r in mex if r["kind"] == "FlowStatistic")
    assert "history" in ts.get("/history", params={"subject": subject}).text
    assert "<table" in ts.get("/history", params={"subject": subject}).text
    # MEX's cells are for the Secretariat only: PAN sees no revision of them.
    pan = sign_in(base, "pan-stats")
    page = pan.get("/history", params={"subject": subject}).text
    assert "No revision of this subject was released to this audience" in page
    assert "<table" not in page.split("<main>", 1)[1]


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from datetime import UTC, datetime, timedelta
    from ipaddress import IPv4Address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "folder.crt", tmp / "folder.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_tls_sessions_are_secure_host_cookies(fed: Federation, tmp_path: Path) -> None:
    import ssl

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(cafile=str(cert))
    with served(fed, tls=(cert, key)) as url:
        assert url.startswith("https://")
        first = client(url, verify=context).get("/signin")
        cookie = first.headers["set-cookie"]
        assert cookie.startswith("__Host-corredor=") and "Secure" in cookie
        assert "max-age=31536000" in first.headers["strict-transport-security"]
        signed = sign_in(url, "ana", verify=context)
        assert signed.get("/api/flows").json()["audience"] == "TS"
        assert (
            client(url, verify=context).get("/api/alerts", auth=("ana", PASSWORD)).status_code
            == 200
        )
        # Plain HTTP to the TLS port gets no answer from the folder.
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https://", "http://") + "/api/flows", timeout=5)


def test_basic_credentials_from_another_host_without_tls_are_refused(fed: Federation) -> None:
    """The rule itself, on a request as uvicorn hands it over from a remote client
    (no test may listen beyond loopback)."""
    from starlette.exceptions import HTTPException
    from starlette.requests import Request

    from node.folder.auth import Folder
    from node.folder.snapshot import PictureSnapshot

    token = base64.b64encode(f"ana:{PASSWORD}".encode())

    def request(client: str, scheme: str) -> Request:
        return Request(
            {
                "type": "http",
                "method": "GET",
                "path": "/api/flows",
                "scheme": scheme,
                "query_string": b"",
                "server": ("folder.example", 443),
                "client": (client, 50000),
                "headers": [(b"authorization", b"Basic " + token)],
            }
        )

    snapshot = PictureSnapshot(fed.home.store_path)
    with FolderDB(fed.folder_db) as db:
        folder = Folder(snapshot, db)
        try:
            with pytest.raises(HTTPException) as refused:
                folder.who(request("192.0.2.10", "http"))
            assert refused.value.status_code == 401
            assert "only over TLS or from loopback" in str(refused.value.detail)
            for client, scheme in (("192.0.2.10", "https"), ("127.0.0.1", "http"), ("::1", "http")):
                who = folder.who(request(client, scheme))
                assert who is not None and who.audience == "TS"
        finally:
            snapshot.close()


def test_the_vendored_chart_library_is_what_was_recorded(base: str) -> None:
    vendor = Path(__file__).resolve().parents[1] / "node" / "folder" / "static" / "vendor"
    record = json.loads((vendor / "VENDORED.json").read_text())
    assert set(record) == {"vega", "vega-lite", "vega-embed", "vega-interpreter"}
    for name, entry in record.items():
        body = (vendor / entry["file"]).read_bytes()
        assert hashlib.sha256(body).hexdigest() == entry["sha256"], name
        assert "Redistribution" in (vendor / f"LICENSE-{name}.txt").read_text()
        served_body = httpx.get(f"{base}/static/vendor/{entry['file']}").content
        assert served_body == body  # served by the folder itself, no sign-in needed
    page = sign_in(base, "ana").get("/flows").text
    scripts = re.findall(r"<script src='([^']+)'", page)
    assert scripts and all(s.startswith("/static/") for s in scripts)


def test_an_hpke_report_is_shown_to_its_producer_and_the_ts_only(tmp_path: Path) -> None:
    """An HPKE box names nobody, so the folder cannot give it to its recipients:
    it never guesses, shows it to its producer and the TS, and says the
    recipients are not named."""
    keys = [EncryptionKey.generate(c) for c in ("GTM", "PAN")]
    box = seal(b"route alert", {k.key_id: k.public for k in keys}, b"aad")
    assert not any(k.key_id in label for k in keys for label in box.recipients)
    path = tmp_path / "aggregator.db"
    PictureStore(path).close()  # the schema
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO relay_outbox (event_id, producer, subject, revision, "
            "recipients, msg_key, msg_value, created_at) VALUES (?,?,?,?,?,?,?,?)",
            (
                "e1",
                "MEX",
                "IntelligenceReport:MEX:x",
                1,
                ",".join(box.recipients),
                None,
                b"sealed",
                time.time(),
            ),
        )
    with PictureStore(path) as store:
        for audience in ("GTM", "PAN", "IOM", "public"):
            assert folder_data.intelligence(store, audience) == []
        (row,) = folder_data.intelligence(store, "MEX")
        assert folder_data.intelligence(store, "TS") == [row]
    assert row["recipients"] == [] and row["sealed_entries"] == 2
    assert "not named (2 sealed entries)" in intelligence_page([row])


def _raw_values(fed: Federation) -> set[str]:
    """Document numbers and full names of every member's raw records, read
    straight from their stores: what must never appear in the folder."""
    values: set[str] = set()
    for store in sorted(fed.home.path.parent.glob("*/node.db")):
        conn = sqlite3.connect(store)
        try:
            for doc, family, given in conn.execute(
                "SELECT document_number, family_name, given_names FROM raw_encounter"
            ):
                values.add(doc.casefold())
                values.add(f"{given} {family}".casefold())
        finally:
            conn.close()
    return values


def _leaks(text: str, values: set[str]) -> list[str]:
    folded = text.casefold()
    return sorted(v for v in values if v in folded)


def test_no_raw_value_in_any_page_download_or_api_answer(fed: Federation, base: str) -> None:
    """Crawl the folder as the Secretariat (the widest audience) from its home
    page, plus every API route and download, and scan each answer for the
    members' planted raw values."""
    values = _raw_values(fed)
    assert len(values) > 100
    some = next(iter(values))
    assert _leaks(f"<td>{some.upper()}</td>", values) == [some]  # the scan finds things
    ts = sign_in(base, "ana")
    todo = [
        "/",
        "/api/flows",
        "/api/corridors",
        "/api/alerts",
        "/api/trends",
        "/api/openapi.json",
        "/api/releases/PAN",
        "/api/releases/MEX",
    ]
    todo += [f"/api/reference/{k}" for k in ("legislation", "consulates", "health", "focal-points")]
    seen: set[str] = set()
    while todo and len(seen) < 300:
        path = todo.pop()
        if path in seen or path.startswith("/signout"):
            continue
        seen.add(path)
        resp = ts.get(path)
        assert _leaks(resp.text, values) == [], path
        if "html" in resp.headers.get("content-type", ""):
            todo += [
                href
                for href in re.findall(r"href=['\"](/[^'\"#?]*)", resp.text)
                if not href.startswith("/static/") and href not in seen
            ]
    assert any(p.startswith("/download/") for p in seen), sorted(seen)
    assert len(seen) > 20, sorted(seen)
