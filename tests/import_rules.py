"""An import-graph checker for a package, read from its source with ``ast``.

It finds every import a module makes, at module level, inside functions and
under ``if TYPE_CHECKING:`` alike (an import hidden in a function still ties
two modules together, and is how a cycle hides), and checks five rules:

- **cycle**: no module reaches itself through imports;
- **layer**: a unit (a top-level module or subpackage of the package) imports
  only units on its own floor or below; every unit has a floor;
- **kafka**: only the units allowed to may import a Kafka client library;
- **demo**: only the units allowed to may import the demo unit;
- **private**: no module imports another module's private (``_name``) names,
  whether by ``from m import _name``, by ``m._name`` on an imported module, or by
  importing a private module from outside its own package.

It is a test helper (``tests/test_import_rules.py`` runs it on ``node/`` and
on small synthetic trees, to prove each rule can fail); it imports nothing
from the package it checks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    target: str  # the most specific module the import names (internal), or its dotted name
    names: tuple[str, ...]  # names taken by ``from target import ...`` that are not modules
    line: int
    internal: bool


@dataclass(frozen=True)
class Violation:
    rule: str  # cycle | layer | kafka | demo | private | unplaced
    module: str
    line: int
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.module}:{self.line}: {self.detail}"


@dataclass(frozen=True)
class Rules:
    """The rules for one package.

    ``floors`` lists the package's units from the bottom up; each entry is the
    set of units on that floor. ``kafka_units`` may import ``kafka_libraries``;
    ``demo_importers`` may import the unit ``demo_unit``.
    """

    package: str
    floors: Sequence[frozenset[str]]
    kafka_units: frozenset[str] = frozenset()
    kafka_libraries: frozenset[str] = frozenset({"kafka", "confluent_kafka"})
    demo_unit: str | None = None
    demo_importers: frozenset[str] = frozenset()

    def floor_of(self, unit: str) -> int | None:
        for number, units in enumerate(self.floors):
            if unit in units:
                return number
        return None


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def modules_of(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``root`` (the
    package's directory)."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join([package, *parts])] = path
    return out


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base.pop()
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([name] if name else [])])


def _longest_module(dotted: str, modules: Mapping[str, Path]) -> str | None:
    parts = dotted.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(module: str, path: Path, modules: Mapping[str, Path], package: str) -> list[Import]:
    """Every import ``module`` makes, resolved to modules of ``modules`` where
    they are internal."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def add(dotted: str, names: tuple[str, ...], line: int) -> None:
        internal = dotted == package or dotted.startswith(package + ".")
        target = (_longest_module(dotted, modules) or dotted) if internal else dotted
        found.append(Import(module, target, names, line, internal))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _resolve_relative(module, is_package, node.level, node.module)
            else:
                base = node.module or ""
            if base == "__future__":
                continue
            plain: list[str] = []
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:  # ``from pkg import submodule``
                    add(sub, (), node.lineno)
                else:
                    plain.append(alias.name)
            if plain or not node.names:
                add(base, tuple(plain), node.lineno)
    found.extend(_private_attributes(module, tree, modules, package))
    return found


def _private_attributes(
    module: str, tree: ast.Module, modules: Mapping[str, Path], package: str
) -> Iterator[Import]:
    """``alias._name`` where ``alias`` is an internal module this one imported
    (``import pkg.m as alias``, ``from pkg import m``): a private name used
    across modules as surely as ``from pkg.m import _name``."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules and alias.asname:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub in modules:
                    aliases[alias.asname or alias.name] = sub
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and _is_private(node.attr)
            and aliases[node.value.id] != module
        ):
            yield Import(module, aliases[node.value.id], (node.attr,), node.lineno, True)


def import_graph(root: Path, package: str) -> tuple[dict[str, Path], list[Import]]:
    modules = modules_of(root, package)
    edges: list[Import] = []
    for name, path in modules.items():
        edges.extend(imports_of(name, path, modules, package))
    return modules, edges


def unit_of(module: str, package: str) -> str:
    """The top-level module or subpackage of ``package`` that ``module`` is in
    (the package's own ``__init__`` is the unit ``__init__``)."""
    rest = module[len(package) + 1 :] if module != package else ""
    return rest.split(".")[0] if rest else "__init__"


def cycles(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """The import cycles: each strongly connected component of more than one
    module, or a module importing itself, as a sorted list (Tarjan's algorithm,
    iterative so a deep package cannot hit the recursion limit)."""
    graph: dict[str, set[str]] = {n: set() for n in nodes}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return sorted(found)


@dataclass
class Report:
    violations: list[Violation] = field(default_factory=list)

    def of(self, rule: str) -> list[Violation]:
        return [v for v in self.violations if v.rule == rule]


def check(root: Path, rules: Rules) -> Report:
    """Every violation of ``rules`` in the package whose directory is ``root``."""
    package = rules.package
    modules, edges = import_graph(root, package)
    report = Report()
    add = report.violations.append
    internal = [e for e in edges if e.internal and e.target != e.importer]

    for component in cycles(modules, ((e.importer, e.target) for e in internal)):
        members = set(component)
        links = sorted(
            {
                f"{e.importer}:{e.line} -> {e.target}"
                for e in internal
                if e.importer in members and e.target in members
            }
        )
        add(Violation("cycle", component[0], 0, " <-> ".join(component) + "; " + "; ".join(links)))

    for unit in sorted({unit_of(m, package) for m in modules}):
        if unit != "__init__" and rules.floor_of(unit) is None:
            add(Violation("unplaced", f"{package}.{unit}", 0, f"unit {unit!r} has no floor"))

    for e in edges:
        importer_unit = unit_of(e.importer, package)
        if e.internal:
            target_unit = unit_of(e.target, package)
            low, high = rules.floor_of(target_unit), rules.floor_of(importer_unit)
            if (
                target_unit != importer_unit
                and target_unit != "__init__"
                and low is not None
                and high is not None
                and low > high
            ):
                add(
                    Violation(
                        "layer",
                        e.importer,
                        e.line,
                        f"{importer_unit} (floor {high}) imports {e.target}"
                        f" ({target_unit}, floor {low})",
                    )
                )
            if (
                rules.demo_unit is not None
                and target_unit == rules.demo_unit
                and importer_unit != rules.demo_unit
                and importer_unit not in rules.demo_importers
            ):
                add(Violation("demo", e.importer, e.line, f"imports {e.target}"))
            for name in e.names:
                if _is_private(name) and e.target != e.importer:
                    add(Violation("private", e.importer, e.line, f"takes {name} from {e.target}"))
            private_module = next(
                (i for i, part in enumerate(e.target.split(".")) if _is_private(part)), None
            )
            if private_module is not None:
                parent = ".".join(e.target.split(".")[:private_module])
                if not (e.importer == parent or e.importer.startswith(parent + ".")):
                    add(
                        Violation(
                            "private", e.importer, e.line, f"imports private module {e.target}"
                        )
                    )
        elif (
            e.target.split(".")[0] in rules.kafka_libraries
            and importer_unit not in rules.kafka_units
        ):
            add(Violation("kafka", e.importer, e.line, f"imports {e.target}"))
    return report
