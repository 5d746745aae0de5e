"""The package's import rules, checked on its source (tests/import_rules.py),
and the checker itself checked on small synthetic trees, one per rule, so that
a rule that could never fail would show here.

The floors, bottom up (docs/architecture.md draws them). A unit may import
units on its own floor or below, never above; no module reaches itself
through imports, whether they sit at the top of a file or inside a function.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from tests.import_rules import Rules, check, cycles, import_graph, unit_of

NODE = Path(__file__).resolve().parent.parent / "node"

FLOORS: list[frozenset[str]] = [
    # 0. What everything may use: the root exception, file limits, names, and the
    #    long-running loops' signals and backoff.
    frozenset(
        {"errors", "limits", "files", "yamlsafe", "csvfile", "logging_setup", "topics", "loops"}
    ),
    # 1. The stages that need only the base: data models, cryptography.
    frozenset({"model", "crypto"}),
    # 2. The other stages: policy engine, codec, stores, Kafka, renderers.
    frozenset({"policy", "codec", "store", "transport", "report"}),
    # 3. A home's configuration, read in one place.
    frozenset({"config"}),
    # 4. The roles: what a member and the Secretariat do, and the federation
    #    (membership, keys, the manifest), with what every role reads from a home.
    frozenset({"home", "member", "aggregator", "federation"}),
    # 5. The operator's tools (set-up, checks, backups, metrics, serving), the
    #    local broker and the online folder.
    frozenset({"operator", "devkafka", "folder"}),
    # 6. The synthetic federation.
    frozenset({"demo"}),
    # 7. The command line, on top: nothing imports it.
    frozenset({"cli"}),
]

NODE_RULES = Rules(
    package="node",
    floors=FLOORS,
    kafka_units=frozenset({"transport"}),
    demo_unit="demo",
    demo_importers=frozenset({"cli"}),
)


# -- the package ------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_report() -> list[str]:
    return [str(v) for v in check(NODE, NODE_RULES).violations]


@pytest.mark.parametrize("rule", ["cycle", "layer", "kafka", "demo", "private", "unplaced"])
def test_node_keeps_the_rule(node_report: list[str], rule: str) -> None:
    broken = [v for v in node_report if v.startswith(f"{rule}:")]
    assert broken == [], "\n".join(broken)


def test_every_floor_names_units_that_exist() -> None:
    """A floor naming a unit that was renamed away would hide the new one."""
    modules, _ = import_graph(NODE, "node")
    units = {unit_of(m, "node") for m in modules}
    named = set().union(*FLOORS)
    assert named <= units, sorted(named - units)


def test_the_graph_sees_function_level_imports() -> None:
    """The import inside a function that once hid the operations <-> workers cycle
    is an edge of the graph: worker_main's imports are all found."""
    _, edges = import_graph(NODE, "node")
    targets = {e.target for e in edges if e.importer == "node.member.worker_main"}
    assert {"node.member.staging", "node.member.drain", "node.member.workers"} <= targets


def test_the_rooms_keep_their_floors(tmp_path: Path) -> None:
    """node's own floors, on a small tree shaped like node/: the operator may
    use the federation, the member and the aggregator, and the roles use the
    federation; a stage importing the federation or the aggregator, or a role
    importing the operator, is an upward import."""
    files = {
        "store/db.py": "",
        "federation/trust.py": "from node.store import db\n",
        "member/publish.py": "from node.federation import trust\n",
        "aggregator/picture_sync.py": "from node.member import publish\n",
        "operator/doctor.py": (
            "from node.federation import trust\n"
            "from node.member import publish\n"
            "from node.aggregator import picture_sync\n"
        ),
    }
    upward = {
        "store/ledger.py": "from node.federation import trust\n",
        "policy/floor.py": "def f():\n    from node.aggregator.picture_sync import x\n",
        "federation/anchors.py": "from node.operator.doctor import diagnose\n",
        "member/follow.py": "from node.operator import doctor\n",
    }

    def violations(tree: dict[str, str]) -> list[tuple[str, str]]:
        root = tmp_path / str(len(list(tmp_path.iterdir()))) / "node"
        for name, text in tree.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text, encoding="utf-8")
        for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            (directory / "__init__.py").touch()
        return sorted((v.rule, v.module) for v in check(root, NODE_RULES).violations)

    assert violations(files) == []
    assert violations(files | upward) == [
        ("layer", "node.federation.anchors"),
        ("layer", "node.member.follow"),
        ("layer", "node.policy.floor"),
        ("layer", "node.store.ledger"),
    ]


TOPIC_LITERALS = ("corredor.events", "corredor.control", "corredor.picture", "corredor-aggregator")


def test_topic_and_group_names_are_written_once() -> None:
    """Every topic and consumer-group name comes from node/topics.py: no other
    module holds one as a string (docstrings may mention them)."""
    found = []
    for path in sorted(NODE.rglob("*.py")):
        if path == NODE / "topics.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        # A client id is not a group, though the aggregator's shares its name.
        client_ids = (
            {
                id(default)
                for node in ast.walk(tree)
                if isinstance(node, ast.arguments)
                for arg, default in zip(
                    [*node.posonlyargs, *node.args][-len(node.defaults) or len(node.args) :],
                    node.defaults,
                    strict=False,
                )
                if arg.arg == "client_id"
            }
            | {
                id(node.value)
                for node in ast.walk(tree)
                if isinstance(node, ast.keyword) and node.arg == "client_id"
            }
            | {
                id(default)
                for node in ast.walk(tree)
                if isinstance(node, ast.arguments)
                for arg, default in zip(node.kwonlyargs, node.kw_defaults, strict=True)
                if arg.arg == "client_id"
            }
        )
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings | client_ids
                and node.value in (*TOPIC_LITERALS, "corredor.demo.")
            ):
                found.append(f"{path.relative_to(NODE.parent)}:{node.lineno}: {node.value!r}")
    assert found == [], "\n".join(found)


# -- the checker, on synthetic trees -------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    for directory in [root / "pkg", *(p for p in (root / "pkg").rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()
    return root / "pkg"


SMALL = Rules(
    package="pkg",
    floors=[
        frozenset({"errors"}),
        frozenset({"transport", "store"}),
        frozenset({"roles"}),
        frozenset({"demo"}),
        frozenset({"cli"}),
    ],
    kafka_units=frozenset({"transport"}),
    demo_unit="demo",
    demo_importers=frozenset({"cli"}),
)

CLEAN = {
    "errors.py": "class Error(Exception): ...\n",
    "transport/kafka.py": "import kafka\nfrom pkg.errors import Error\n",
    "store/db.py": "from ..errors import Error\n",
    "roles/run.py": "from pkg.store import db\nfrom pkg.transport.kafka import Error\n",
    "demo/synth.py": "from pkg.roles.run import db\n",
    "cli/main.py": "from pkg import demo\nfrom pkg.demo.synth import db\n",
}


def _violations(tmp_path: Path, changes: dict[str, str]) -> list[tuple[str, str]]:
    root = _tree(tmp_path, CLEAN | changes)
    return [(v.rule, v.module) for v in check(root, SMALL).violations]


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    assert _violations(tmp_path, {}) == []


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    found = _violations(
        tmp_path,
        {
            "roles/ops.py": "from pkg.roles.workers import Worker\n",
            "roles/workers.py": (
                "class Worker:\n    def run(self):\n        from pkg.roles import ops\n"
            ),
        },
    )
    assert ("cycle", "pkg.roles.ops") in found


def test_a_cycle_of_three_through_relative_imports_is_found(tmp_path: Path) -> None:
    found = _violations(
        tmp_path,
        {
            "roles/a.py": "from . import b\n",
            "roles/b.py": "from .c import thing\n",
            "roles/c.py": "def thing():\n    from pkg.roles.a import x\n",
        },
    )
    assert found == [("cycle", "pkg.roles.a")]
    assert cycles("abc", [("a", "b"), ("b", "c"), ("c", "a")]) == [["a", "b", "c"]]
    assert cycles("ab", [("a", "b")]) == []


def test_an_upward_import_is_found(tmp_path: Path) -> None:
    found = _violations(tmp_path, {"store/db.py": "from pkg.roles.run import db\n"})
    assert ("layer", "pkg.store.db") in found


def test_kafka_outside_transport_is_found(tmp_path: Path) -> None:
    found = _violations(
        tmp_path,
        {
            "roles/admin.py": "def make():\n    from kafka.admin import NewTopic\n",
            "store/fast.py": "import confluent_kafka\n",
        },
    )
    assert ("kafka", "pkg.roles.admin") in found
    assert ("kafka", "pkg.store.fast") in found


def test_demo_imported_from_production_code_is_found(tmp_path: Path) -> None:
    # The demo sits above the roles, so this is also an upward import; the demo
    # rule names it on its own, whatever the floors say.
    found = _violations(tmp_path, {"roles/places.py": "from pkg.demo.synth import PLACES\n"})
    assert ("demo", "pkg.roles.places") in found
    flat = Rules(
        package="pkg",
        floors=[frozenset({"errors", "transport", "store", "roles", "demo", "cli"})],
        kafka_units=frozenset({"transport"}),
        demo_unit="demo",
        demo_importers=frozenset({"cli"}),
    )
    root = tmp_path / "pkg"
    assert [(v.rule, v.module) for v in check(root, flat).violations] == [
        ("demo", "pkg.roles.places")
    ]


def test_private_names_across_modules_are_found(tmp_path: Path) -> None:
    found = _violations(
        tmp_path,
        {
            "roles/ops.py": "def _member(home):\n    return home\n__version__ = '1'\n",
            "roles/taker.py": "from pkg.roles.ops import _member, __version__\n",
            "roles/caller.py": "from pkg.roles import ops\nops._member(None)\nops.__doc__\n",
            "roles/aliased.py": "import pkg.roles.ops as o\no._member(None)\n",
            "roles/self.py": "def _own():\n    return _own\n",
        },
    )
    privates = sorted(m for rule, m in found if rule == "private")
    assert privates == ["pkg.roles.aliased", "pkg.roles.caller", "pkg.roles.taker"]


def test_a_private_module_is_private_to_its_package(tmp_path: Path) -> None:
    found = _violations(
        tmp_path,
        {
            "transport/_wire.py": "FRAME = 1\n",
            "transport/kafka.py": "import kafka\nfrom pkg.transport._wire import FRAME\n",
            "roles/frames.py": "from pkg.transport._wire import FRAME\n",
        },
    )
    assert [m for rule, m in found if rule == "private"] == ["pkg.roles.frames"]


def test_a_unit_without_a_floor_is_found(tmp_path: Path) -> None:
    found = _violations(tmp_path, {"newthing.py": "from pkg.errors import Error\n"})
    assert found == [("unplaced", "pkg.newthing")]
