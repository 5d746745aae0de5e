"""CORREDOR_KAFKA_CLIENT: the client of a config that names none (docs/cli.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import ENV_KAFKA_CLIENT, Home, HomeConfig, KafkaSettings, load_home
from node.errors import ConfigError


def test_kafka_python_when_the_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KAFKA_CLIENT, raising=False)
    assert KafkaSettings().client == "kafka-python"


@pytest.mark.parametrize("value", ["confluent", " confluent ", "kafka-python"])
def test_the_variable_names_the_default(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENV_KAFKA_CLIENT, value)
    assert KafkaSettings().client == value.strip()


def test_a_config_that_names_its_client_keeps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KAFKA_CLIENT, "confluent")
    assert KafkaSettings.model_validate({"client": "kafka-python"}).client == "kafka-python"


def test_a_saved_home_keeps_the_client_it_was_made_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variable decides at creation: a home saved under it names confluent,
    and reads back as confluent once the variable is gone (or says otherwise)."""
    monkeypatch.setenv(ENV_KAFKA_CLIENT, "confluent")
    home = Home(tmp_path / "home", HomeConfig(role="member", country="PAN"))
    home.save()
    assert "client: confluent" in home.config_file.read_text(encoding="utf-8")
    monkeypatch.setenv(ENV_KAFKA_CLIENT, "kafka-python")
    assert load_home(home.path).config.kafka.client == "confluent"


@pytest.mark.parametrize("value", ["rdkafka", "Confluent", "kafka_python"])
def test_an_unknown_client_is_an_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(ENV_KAFKA_CLIENT, value)
    with pytest.raises(
        ConfigError, match=rf"{ENV_KAFKA_CLIENT}='{value}'.*kafka-python or confluent"
    ):
        KafkaSettings()
