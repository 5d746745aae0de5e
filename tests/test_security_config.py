"""Without a broker: client credentials, the development CA and the ACL table."""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from node.aggregator.setup import init_aggregator
from node.cli import main
from node.config import KafkaSettings, kafka_password, kafka_security, load_home
from node.devkafka.pki import init_ca, issue
from node.devkafka.secure import federation_grants, group_prefix
from node.errors import ConfigError, KafkaSetupError
from node.transport.credentials import MASK, Redacted, security_settings

SECRET = "s3cret-Passw0rd-value"


# --- the password never prints itself ------------------------------------------------


def test_redacted_hides_itself_everywhere_but_on_the_wire(caplog: pytest.LogCaptureFixture) -> None:
    value = Redacted(SECRET)
    assert SECRET not in repr(value)
    assert SECRET not in str(value)
    assert SECRET not in f"{value}" and SECRET not in f"{value!r}"
    assert SECRET not in "%s" % (value,)  # noqa: UP031  (what logging does)
    assert SECRET not in repr({"sasl_plain_password": value})
    assert value.encode("utf-8") == SECRET.encode("utf-8")  # what SCRAM hashes
    assert value.reveal() == SECRET
    with caplog.at_level(logging.DEBUG, logger="kafka.admin.client"):
        logging.getLogger("kafka.admin.client").debug("configuration: %s", {"p": value})
    assert MASK in caplog.text and SECRET not in caplog.text


def test_security_settings_for_each_protocol() -> None:
    assert security_settings() == {}
    sasl = security_settings(protocol="SASL_SSL", username="PAN", password=SECRET, cafile="/ca.pem")
    assert sasl["security_protocol"] == "SASL_SSL"
    assert sasl["sasl_mechanism"] == "SCRAM-SHA-512"
    assert sasl["sasl_plain_username"] == "PAN"
    assert isinstance(sasl["sasl_plain_password"], Redacted)
    assert sasl["ssl_cafile"] == "/ca.pem" and sasl["ssl_check_hostname"] is True
    assert SECRET not in repr(sasl)
    with pytest.raises(ValueError, match="username and a password"):
        security_settings(protocol="SASL_SSL", username="PAN")
    with pytest.raises(ValueError, match="protocol"):
        security_settings(protocol="KERBEROS")


# --- corredor.yaml holds where the password is, never the password --------------------


def _private(path: Path, text: str) -> Path:
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def test_password_from_a_private_file_relative_to_the_home(tmp_path: Path) -> None:
    _private(tmp_path / "kafka.password", SECRET)
    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        username="PAN",
        password_file="kafka.password",
        ssl_cafile="ca.pem",
    )
    password = kafka_password(settings, tmp_path)
    assert password is not None and password.get_secret_value() == SECRET
    assert SECRET not in repr(password) and SECRET not in str(password)
    config = kafka_security(settings, tmp_path)
    assert config["sasl_plain_password"] == SECRET
    assert config["ssl_cafile"] == str(tmp_path / "ca.pem")
    assert SECRET not in repr(config) and SECRET not in repr(settings)


def test_password_from_an_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = KafkaSettings(
        security_protocol="SASL_SSL", username="PAN", password_env="PAN_KAFKA_PASSWORD"
    )
    with pytest.raises(ConfigError, match="PAN_KAFKA_PASSWORD, which is not set"):
        kafka_security(settings, tmp_path)
    monkeypatch.setenv("PAN_KAFKA_PASSWORD", SECRET)
    assert kafka_security(settings, tmp_path)["sasl_plain_password"] == SECRET


def test_a_readable_password_file_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = _private(tmp_path / "pw", SECRET)
    os.chmod(path, 0o644)
    settings = KafkaSettings(security_protocol="SASL_SSL", username="PAN", password_file=str(path))
    with pytest.raises(ConfigError, match="chmod 600") as caught:
        kafka_security(settings, tmp_path)
    assert SECRET not in str(caught.value)
    with pytest.raises(ConfigError, match="cannot read") as missing:
        kafka_security(settings.model_copy(update={"password_file": "nope"}), tmp_path)
    assert SECRET not in str(missing.value)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"security_protocol": "SASL_SSL", "password_env": "X"}, "needs kafka.username"),
        ({"security_protocol": "SASL_SSL", "username": "PAN"}, "exactly one of"),
        (
            {
                "security_protocol": "SASL_SSL",
                "username": "PAN",
                "password_env": "X",
                "password_file": "f",
            },
            "exactly one of",
        ),
    ],
)
def test_incomplete_credentials_are_config_errors(fields: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        KafkaSettings(**fields)


def test_a_password_written_into_corredor_yaml_is_refused_and_not_echoed(tmp_path: Path) -> None:
    home = init_aggregator(tmp_path / "ts")
    data = yaml.safe_load(home.config_file.read_text())
    data["kafka"].update(security_protocol="SASL_SSL", username="secretariat", password=SECRET)
    home.config_file.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"kafka\.password") as caught:
        load_home(home.path)
    assert SECRET not in str(caught.value)
    result = CliRunner().invoke(main, ["--home", str(home.path), "status"])
    assert result.exit_code == 1 and SECRET not in result.output


def test_plaintext_homes_need_nothing_new(tmp_path: Path) -> None:
    home = init_aggregator(tmp_path / "ts")
    assert load_home(home.path).kafka_security() == {}


# --- the development CA ----------------------------------------------------------------


def test_ca_issues_a_broker_certificate_kafka_and_python_accept(tmp_path: Path) -> None:
    ca_pem = init_ca(tmp_path)
    issued = issue(tmp_path, "broker", ["127.0.0.1", "localhost"])
    assert (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600
    assert issued.keystore.stat().st_mode & 0o777 == 0o600
    text = issued.keystore.read_text()
    # One file: PKCS#8 key (unencrypted), then leaf, then CA.
    assert text.startswith("-----BEGIN PRIVATE KEY-----")
    assert text.count("-----BEGIN CERTIFICATE-----") == 2
    ca = x509.load_pem_x509_certificate(ca_pem.read_bytes())
    leaf = x509.load_pem_x509_certificate(issued.certificate.read_bytes())
    leaf.verify_directly_issued_by(ca)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    # Python's TLS stack loads the same files a kafka-python client would.
    context = ssl.create_default_context(cafile=str(ca_pem))
    context.load_cert_chain(str(issued.keystore))


def test_ca_is_never_overwritten_and_needs_to_exist(tmp_path: Path) -> None:
    with pytest.raises(KafkaSetupError, match="no CA"):
        issue(tmp_path, "broker")
    init_ca(tmp_path)
    with pytest.raises(KafkaSetupError, match="already holds a CA"):
        init_ca(tmp_path)


def test_pki_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["pki", "init", str(tmp_path)]).exit_code == 0
    done = runner.invoke(
        main, ["pki", "issue", str(tmp_path), "broker", "--san", "127.0.0.1", "--san", "kafka.lan"]
    )
    assert done.exit_code == 0, done.output
    assert "127.0.0.1, kafka.lan" in done.output
    assert (tmp_path / "broker.pem").is_file()


# --- the federation's ACL table ----------------------------------------------------------


def test_only_the_secretariat_may_read_the_shared_topic() -> None:
    grants = federation_grants(["PAN", "GTM"])
    readers = {g.principal for g in grants if g.name == "corredor.events" and g.operation == "READ"}
    writers = {
        g.principal for g in grants if g.name == "corredor.events" and g.operation == "WRITE"
    }
    assert readers == {"User:secretariat"}
    assert writers == {"User:PAN", "User:GTM"}

    def pan_on(topic: str) -> set[str]:
        return {g.operation for g in grants if g.principal == "User:PAN" and g.name == topic}

    assert pan_on("corredor.picture") == {"READ", "DESCRIBE"}  # members never write it
    # Members write signed statements (approvals, audit heads) on the control topic.
    assert pan_on("corredor.control") == {"READ", "WRITE", "DESCRIBE"}
    dead_letters = {(g.principal, g.operation) for g in grants if g.name == "corredor.events.dlq"}
    assert dead_letters == {("User:secretariat", op) for op in ("READ", "WRITE", "DESCRIBE")}
    groups = {(g.principal, g.name, g.pattern) for g in grants if g.resource == "group"}
    assert ("User:PAN", group_prefix("PAN"), "prefixed") in groups
    assert not any(p == "User:PAN" and n.startswith("GTM") for p, n, _ in groups)


def test_connecting_a_home_replaces_every_earlier_security_setting(tmp_path: Path) -> None:
    from node.devkafka.manage import home_settings
    from node.devkafka.state import ClusterInfo, SecurityInfo

    security = SecurityInfo(
        ca_file=tmp_path / "ca.pem",
        keystore=tmp_path / "broker.pem",
        credentials_dir=tmp_path / "credentials",
        admin="admin",
        secretariat="secretariat",
        members=["PAN"],
        shared_topic="corredor.events",
        control_topic="corredor.control",
        picture_topic="corredor.picture",
    )
    info = ClusterInfo(
        cluster_id="x",
        bootstrap="127.0.0.1:1",
        java="java",
        jars=tmp_path,
        base_dir=tmp_path,
        nodes=[],
        secure=True,
        security=security,
    )
    before = KafkaSettings(security_protocol="SASL_SSL", username="PAN", password_env="OLD")
    secure = KafkaSettings.model_validate({**before.model_dump(), **home_settings(info, "PAN")})
    assert secure.password_env is None
    assert secure.password_file == str(tmp_path / "credentials" / "PAN.password")
    with pytest.raises(KafkaSetupError, match="no Kafka user 'GTM'"):
        home_settings(info, "GTM")
    plain_info = info.model_copy(update={"secure": False, "security": None})
    plain = KafkaSettings.model_validate({**secure.model_dump(), **home_settings(plain_info, "")})
    assert plain.security_protocol == "PLAINTEXT" and plain.username is None
    assert kafka_security(plain, tmp_path) == {}
