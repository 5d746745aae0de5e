"""Every package of ``node/`` says what it offers: an ``__init__.py`` whose
``__all__`` lists its public submodules and subpackages, and any names the
``__init__`` itself binds (re-exports), and nothing else. The check is an AST
walk, itself tried on small planted trees.
"""

from __future__ import annotations

import ast
from pathlib import Path

NODE = Path(__file__).resolve().parent.parent / "node"


def packages_of(root: Path) -> list[Path]:
    """Every directory under ``root`` (itself included) that holds Python files."""
    return sorted(
        d
        for d in [root, *root.rglob("*")]
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
    )


def public_children(package: Path) -> set[str]:
    """The package's public submodules and subpackages."""
    names: set[str] = set()
    for child in package.iterdir():
        if child.name.startswith("_"):
            continue
        if child.suffix == ".py":
            names.add(child.stem)
        elif child.is_dir() and any(child.glob("*.py")):
            names.add(child.name)
    return names


def _bound_names(tree: ast.Module) -> set[str]:
    """Names the module's top level binds (imports, defs, classes, assignments),
    also inside a top-level ``try`` or ``if``, never inside a def or class."""
    names: set[str] = set()
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.Try | ast.If | ast.With | ast.For):
            pending.extend(ast.iter_child_nodes(node))
        elif isinstance(node, ast.ExceptHandler):
            pending.extend(node.body)
    return names


def _declared_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            assert isinstance(value, ast.List | ast.Tuple), "__all__ is a literal list"
            entries: list[str] = []
            for element in value.elts:
                assert isinstance(element, ast.Constant) and isinstance(element.value, str)
                entries.append(element.value)
            return entries
    return None


def package_problems(root: Path) -> list[str]:
    """What is wrong with the ``__all__`` of each package under ``root``."""
    problems: list[str] = []
    for package in packages_of(root):
        name = package.relative_to(root.parent).as_posix()
        init = package / "__init__.py"
        if not init.is_file():
            problems.append(f"{name}: no __init__.py")
            continue
        tree = ast.parse(init.read_text(encoding="utf-8"), filename=str(init))
        declared = _declared_all(tree)
        if declared is None:
            problems.append(f"{name}: no __all__")
            continue
        children = public_children(package)
        bound = _bound_names(tree)
        problems.extend(
            f"{name}: __all__ names {entry!r}, neither a submodule nor bound in __init__"
            for entry in declared
            if entry not in children and entry not in bound
        )
        problems.extend(
            f"{name}: __all__ does not list its submodule {child!r}"
            for child in sorted(children - set(declared))
        )
        if len(declared) != len(set(declared)):
            problems.append(f"{name}: __all__ names an entry twice")
    return problems


def test_every_package_declares_its_surface() -> None:
    assert len(packages_of(NODE)) > 10
    assert package_problems(NODE) == []


def _plant(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


def test_a_clean_planted_tree_passes(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "__init__.py": (
                '__all__ = ["VERSION", "roles", "util"]\n'
                'try:\n    VERSION = "1"\nexcept ImportError:\n    VERSION = "0"\n'
            ),
            "util.py": "",
            "_private.py": "",
            "__main__.py": "",
            "roles/__init__.py": ('from pkg.roles.run import Run\n__all__ = ["Run", "run"]\n'),
            "roles/run.py": "class Run: ...\n",
            "data/table.csv": "a,b\n",
        },
    )
    assert package_problems(root) == []


def test_planted_mistakes_are_found(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "__init__.py": '__all__ = ["roles", "gone", "store"]\ndef f():\n    gone = 1\n',
            "util.py": "",
            "roles/__init__.py": "from pkg.roles.run import Run\n",
            "roles/run.py": "class Run: ...\n",
            "store/db.py": "",
        },
    )
    assert package_problems(root) == [
        "pkg: __all__ names 'gone', neither a submodule nor bound in __init__",
        "pkg: __all__ does not list its submodule 'util'",
        "pkg/roles: no __all__",
        "pkg/store: no __init__.py",
    ]
