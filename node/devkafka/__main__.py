"""Shell entry point: ``python -m node.devkafka fetch|up|down|status``.

A stop-gap for the Makefile and for engineers; ``corredor kafka ...`` is the
operator-facing CLI and calls the same library functions.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from node import config
from node.devkafka.jars import ensure_jars
from node.devkafka.manage import local_down, local_status, local_up
from node.errors import CorredorError


def _echo(message: str) -> None:
    print(message, file=sys.stderr)


def fetch(_args: argparse.Namespace) -> int:
    print(ensure_jars(config.kafka_pom(), config.kafka_dir(), _echo))
    return 0


def up(args: argparse.Namespace) -> int:
    info, started = local_up(
        config.kafka_dir(),
        config.kafka_pom(),
        nodes=args.nodes,
        timeout=args.timeout,
        echo=_echo,
        secure=args.secure,
    )
    _echo("started" if started else "local Kafka already running")
    _echo(f"logs: {info.base_dir}/node-*/logs/server.log")
    if info.security is not None:
        _echo(f"TLS CA: {info.security.ca_file}")
        _echo(f"credentials (mode 0600 files): {info.security.credentials_dir}")
    print(info.bootstrap)
    return 0


def down(_args: argparse.Namespace) -> int:
    info = local_down(config.kafka_dir())
    if info is None:
        _echo("no local Kafka is running")
        return 0
    _echo(f"stopped local Kafka at {info.bootstrap}")
    return 0


def status(_args: argparse.Namespace) -> int:
    found = local_status(config.kafka_dir())
    if found is None:
        _echo("no local Kafka is running")
        return 1
    info, statuses = found
    print(f"bootstrap {info.bootstrap}  cluster {info.cluster_id}")
    for s in statuses:
        state = "up" if s.alive else "DOWN"
        print(f"node {s.node_id}  pid {s.pid:<8} port {s.port:<6} {state}")
    return 0 if all(s.alive for s in statuses) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m node.devkafka",
        description="Run a local Apache Kafka broker from Maven Central jars.",
        epilog="example: python -m node.devkafka up --nodes 3",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch", help="fetch and cache the broker jars").set_defaults(func=fetch)
    start = commands.add_parser("up", help="start a cluster and print its bootstrap address")
    start.add_argument("--nodes", type=int, choices=(1, 3), default=1)
    start.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for it")
    start.add_argument("--secure", action="store_true", help="SASL_SSL with SCRAM users and ACLs")
    start.set_defaults(func=up)
    commands.add_parser("down", help="stop the cluster and delete its data").set_defaults(func=down)
    commands.add_parser("status", help="show each node; exit 1 if any is down").set_defaults(
        func=status
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Readiness probes against a starting broker make kafka-python log connection
    # errors; without this, logging's last-resort handler prints them all.
    logging.getLogger("kafka").addHandler(logging.NullHandler())
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except CorredorError as exc:
        _echo(f"error: {exc}")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
