"""Structured logs: one JSON object per line, and no raw value in any of them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.aggregator.run import aggregate_once
from node.cli import main
from node.demo.synth import generate_encounters, plant_values, write_csv
from node.logging_setup import JsonFormatter, configure_logging
from node.member.intake import ingest
from node.member.member_home import init_member
from node.member.publish import publish
from tests.factories import START, aggregator_for
from tests.patience import PATIENCE_S


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    kafka_level = logging.getLogger("kafka").level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    logging.getLogger("kafka").setLevel(kafka_level)


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_formatter_writes_one_object_per_line_with_extras_and_exceptions() -> None:
    fmt = JsonFormatter()
    record = logging.LogRecord(
        "corredor.follow", logging.WARNING, __file__, 1, "two\nlines %s", ("here",), None
    )
    record.country = "PAN"
    out = fmt.format(record)
    assert "\n" not in out
    entry = json.loads(out)
    assert entry["level"] == "WARNING" and entry["logger"] == "corredor.follow"
    assert entry["message"] == "two\nlines here" and entry["country"] == "PAN"
    assert entry["ts"].endswith("Z")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    entry = json.loads(fmt.format(record))
    assert "ValueError: boom" in str(entry["exception"])


def test_configure_logging_refuses_unknown_formats_and_replaces_only_its_own_handler(
    restore_logging: None,
) -> None:
    with pytest.raises(ValueError, match="text, json"):
        configure_logging(logging.INFO, "xml")  # type: ignore[arg-type]
    first, second = io.StringIO(), io.StringIO()
    configure_logging(logging.INFO, "json", first)
    configure_logging(logging.INFO, "json", second)
    logging.getLogger("corredor.test").info("hello")
    assert first.getvalue() == ""
    assert _lines(second.getvalue())[0]["message"] == "hello"


def test_cli_log_format_json_from_option_and_environment(
    tmp_path: Path, restore_logging: None
) -> None:
    home = tmp_path / "pan"
    init_member(home, "PAN")
    runner = CliRunner()
    for args, env in (
        (["--log-format", "json"], {}),
        ([], {"CORREDOR_LOG_FORMAT": "json"}),
    ):
        stream = io.StringIO()
        result = runner.invoke(main, [*args, "-v", "--home", str(home), "status"], env=env)
        assert result.exit_code == 0, result.output
        root = logging.getLogger()
        ours = [h for h in root.handlers if getattr(h, "corredor", False)]
        assert len(ours) == 1 and isinstance(ours[0].formatter, JsonFormatter)
        assert isinstance(ours[0], logging.StreamHandler)
        ours[0].setStream(stream)
        logging.getLogger("corredor.test").info("after %s", args or env)
        assert _lines(stream.getvalue())[0]["logger"] == "corredor.test"
    result = runner.invoke(
        main, ["--home", str(home), "status"], env={"CORREDOR_LOG_FORMAT": "xml"}
    )
    assert result.exit_code == 2 and "'xml' is not one of" in result.output


def test_debug_logs_of_ingest_publish_and_aggregate_hold_no_raw_value(
    tmp_path: Path, kafka_bootstrap: str, topic: str, restore_logging: None
) -> None:
    stream = io.StringIO()
    configure_logging(logging.DEBUG, "json", stream)
    pan = init_member(tmp_path / "pan", "PAN", bootstrap=kafka_bootstrap, topic=topic)
    rows = generate_encounters("PAN", 400, seed=11, start=START, weeks=4)
    path = tmp_path / "pan.csv"
    write_csv(rows, path)
    assert ingest(pan, path).stored == 400
    agg = aggregator_for(tmp_path, [pan], topic=topic)
    agg.config.kafka.bootstrap = kafka_bootstrap
    agg.save()
    result = publish(pan)
    assert result.drain.acknowledged > 0
    stats = aggregate_once(agg)
    assert stats.applied == result.drain.acknowledged

    text = stream.getvalue()
    entries = _lines(text)  # every line parses: one JSON object each
    loggers = {str(e["logger"]) for e in entries}
    # The capture saw the chatty layers, so the scan below means something.
    assert any(name.startswith("kafka") for name in loggers), sorted(loggers)
    assert len(entries) > 50
    planted = {v for values in plant_values(rows).values() for v in values if len(v) >= 4}
    assert len(planted) > 100
    assert [v for v in planted if v in text] == []

    # The scan does catch a value that reaches a log line.
    leaked = sorted(planted)[0]
    logging.getLogger("corredor.test").debug("oops %s", leaked)
    assert leaked in stream.getvalue()


def test_follow_output_in_json_mode_is_one_object_per_line(
    tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from node.config import REPO_ROOT

    pan = init_member(tmp_path / "pan", "PAN", bootstrap=kafka_bootstrap, topic=topic)
    rows = generate_encounters("PAN", 200, seed=12, start=START, weeks=2)
    write_csv(rows, tmp_path / "pan.csv")
    assert ingest(pan, tmp_path / "pan.csv").stored == 200
    env = {k: v for k, v in os.environ.items() if k != "CORREDOR_LOG_FORMAT"}
    # A file, not a pipe: a loop slowed down by a busy machine logs more cycles
    # than a pipe buffer holds, and would block on a full pipe.
    output = tmp_path / "follow.log"
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node.cli",
                "--home",
                str(pan.path),
                "publish",
                "--follow",
                "--interval",
                "0.3",
                "--metrics-port",
                "0",
            ],
            cwd=REPO_ROOT,
            env={**env, "CORREDOR_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + PATIENCE_S
        from node.store.node_store import NodeStore

        while time.monotonic() < deadline:
            with NodeStore(pan.store_path) as store:
                if store.outbox_status().pending == 0:
                    break
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=PATIENCE_S)
    out = output.read_text(encoding="utf-8")
    assert proc.returncode == 0, out
    entries = _lines(out)  # every line is JSON
    messages = [str(e["message"]) for e in entries]
    assert any(m.startswith("metrics on http://127.0.0.1:") for m in messages), messages
    cycles = [e for e in entries if str(e["message"]).startswith("cycle ")]
    assert cycles and max(int(str(e["acknowledged"])) for e in cycles) > 0
    stopped = [e for e in entries if str(e["message"]).startswith("stopped:")]
    assert len(stopped) == 1 and int(str(stopped[0]["acknowledged"])) > 0
    planted = {v for values in plant_values(rows).values() for v in values if len(v) >= 4}
    assert [v for v in planted if v in out] == []
