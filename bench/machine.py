"""What the numbers were measured on."""

from __future__ import annotations

import os
import platform
import resource
import sys
from importlib import metadata
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def crc32c_active() -> bool:
    """Whether kafka-python computes record-batch CRCs with the native crc32c."""
    from kafka.record import util

    return getattr(util, "crc32c_c", None) is not None and util._crc32c is util.crc32c_c


def _librdkafka() -> str:
    try:
        import confluent_kafka
    except ImportError:
        return "not installed"
    return str(confluent_kafka.libversion()[0])


def describe() -> dict[str, Any]:
    mem_kb = 0
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "kafka_python": _version("kafka-python"),
        "fastavro": _version("fastavro"),
        "cryptography": _version("cryptography"),
        "pydantic": _version("pydantic"),
        "crc32c": _version("crc32c"),
        "crc32c_active": crc32c_active(),
        "confluent_kafka": _version("confluent-kafka"),
        "librdkafka": _librdkafka(),
        "kafka_broker": "Apache Kafka 4.4.0 (1 broker, KRaft, local jars)",
    }


def own_peak_mb() -> float:
    """This process's own peak resident memory, in MB: ``VmHWM`` of
    /proc/self/status, the high-water mark of its own address space.

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries that across fork
    and exec, so a child started by a large process reports the parent's
    peak as its own (the bench's rebuild and backfill children all reported
    the bench's 466 MB, 2026-12-03). Where /proc is missing, that is the
    fallback, an upper bound."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
