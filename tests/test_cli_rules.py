"""The command line is thin: its modules parse, call one library function and
print; none opens a store itself (docs/architecture.md, STYLE.md). The scan is
an AST walk, checked here on a planted example so that it could fail.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

NODE_CLI = Path(__file__).resolve().parent.parent / "node" / "cli"

STORES = frozenset({"NodeStore", "PictureStore", "ReferenceStore"})


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def store_constructions(root: Path) -> list[str]:
    """``path:line name`` for every call of a store class in the tree at ``root``."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _called_name(node.func) in STORES:
                found.append(f"{path.relative_to(root)}:{node.lineno} {_called_name(node.func)}")
    return found


def test_the_cli_opens_no_store() -> None:
    assert NODE_CLI.is_dir()
    assert store_constructions(NODE_CLI) == []


def test_a_planted_store_is_found(tmp_path: Path) -> None:
    files = {
        "clean.py": "from node.aggregator.picture_sync import purge_picture\n"
        "def purge(home, today):\n    return purge_picture(home, today)\n",
        "by_name.py": """\
            from node.store.picture import PictureStore
            def purge(path, today):
                with PictureStore(path) as store:
                    return store.purge_expired(today)
            """,
        "by_attribute.py": """\
            def count(home):
                from node.store import node_store
                return node_store.NodeStore(home.store_path).counts()
            """,
        "reference.py": "import node.store.reference as r\nstore = r.ReferenceStore(p)\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    assert store_constructions(tmp_path) == [
        "by_attribute.py:3 NodeStore",
        "by_name.py:3 PictureStore",
        "reference.py:2 ReferenceStore",
    ]
