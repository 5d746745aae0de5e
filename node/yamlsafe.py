"""The one YAML loader: every YAML file Corredor reads goes through ``load_yaml``.

Policies and the regional floor are law turned into rules, so the loader is
strict where PyYAML is lenient, and bounded where PyYAML is not:

- **Duplicate keys are an error.** PyYAML keeps the last of two equal keys, so
  ``min_cell_size: 5`` followed by ``min_cell_size: 1`` would load as 1 and a
  reviewer reading the first line would be wrong. Keys are compared as the
  values they load as (``yes`` and ``true`` are the same key). A key that a
  merge (``<<: *base``) brings in may be overridden: that is what a merge says.
- **Size** is checked before parsing (``node.limits.MAX_YAML_BYTES``).
- **Depth** is counted while the document is composed, with an explicit counter,
  so 100,000 nested lists stop at level ``MAX_YAML_DEPTH`` with a located error
  instead of a ``RecursionError`` deep inside PyYAML. An alias counts as deep
  as its anchor goes, so aliases of aliases cannot build a deeper value either.
- **Nodes** are counted too, each alias as the nodes it repeats, so a small
  file of aliases of aliases ("billion laughs") cannot expand into gigabytes.
  An alias inside its own anchor (a cycle) is refused.
- A scalar that cannot be built (``2026-02-30``, an integer of 5,000 digits) is
  a located error, not a ``ValueError`` traceback.

Every failure is the caller's ``FileFormatError`` subclass naming the file, the
line (1-based) and, where one is to blame, the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from node.errors import FileFormatError
from node.limits import MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES, read_limited

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Refused(Exception):
    """Raised inside PyYAML's machinery; turned into the caller's error outside."""

    def __init__(self, reason: str, line: int | None, key: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.key = key


def _line(node_or_event: Any) -> int | None:
    mark = getattr(node_or_event, "start_mark", None)
    return None if mark is None else int(mark.line) + 1


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts depth and nodes while composing."""

    def __init__(self, stream: str, max_depth: int, max_nodes: int) -> None:
        super().__init__(stream)
        self._max_depth = max_depth
        self._max_nodes = max_nodes
        self._depth = 0
        self._nodes = 0
        self._deepest = 0  # the deepest level reached in the node being composed
        self._sizes: dict[str, int] = {}
        self._heights: dict[str, int] = {}
        self._open: set[str] = set()

    def _count(self, n: int, event: Any) -> None:
        self._nodes += n
        if self._nodes > self._max_nodes:
            raise _Refused(
                f"more than {self._max_nodes} nodes (aliases count as what they repeat)",
                _line(event),
            )

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, AliasEvent):
            alias = str(event.anchor)
            if alias in self._open:
                raise _Refused(f"alias *{alias} inside its own anchor makes a cycle", _line(event))
            # An alias repeats its anchor here: as deep as the anchor goes, from here.
            reach = self._depth + self._heights.get(alias, 0)
            if reach > self._max_depth:
                raise _Refused(
                    f"alias *{alias} here nests deeper than {self._max_depth} mappings and lists",
                    _line(event),
                )
            self._deepest = max(self._deepest, reach)
            self._count(self._sizes.get(alias, 1), event)
            return super().compose_node(parent, index)
        base = self._depth
        collection = isinstance(event, (MappingStartEvent, SequenceStartEvent))
        if collection:
            self._depth += 1
            if self._depth > self._max_depth:
                raise _Refused(
                    f"nested deeper than {self._max_depth} mappings and lists", _line(event)
                )
        outer_deepest, self._deepest = self._deepest, self._depth
        before = self._nodes
        self._count(1, event)
        anchor = event.anchor
        if anchor is not None:
            self._open.add(anchor)
        node = super().compose_node(parent, index)
        if anchor is not None:
            self._open.discard(anchor)
            self._sizes[anchor] = self._nodes - before
            self._heights[anchor] = self._deepest - base
        self._deepest = max(outer_deepest, self._deepest)
        if collection:
            self._depth -= 1
        return node

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            # PyYAML lets these escape from scalars it recognises but cannot build.
            raise _Refused(f"cannot read value {_excerpt(node)}: {exc}", _line(node)) from exc


def _excerpt(node: Node) -> str:
    if isinstance(node, ScalarNode):
        text = str(node.value)
        return repr(text if len(text) <= 40 else text[:37] + "...")
    return "here"


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _check_duplicate_keys(loader: _BoundedLoader, root: Node) -> None:
    """Refuse a mapping that names a key twice. An explicit stack, not recursion;
    a node shared through an alias is checked once."""
    seen: set[int] = set()
    stack: list[tuple[Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(node.value))
        elif isinstance(node, MappingNode):
            first: dict[Any, int | None] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    stack.append((value_node, path))
                    continue
                if isinstance(key_node, ScalarNode):
                    key = loader.construct_object(key_node)
                    label = _join(path, key)
                    try:
                        repeated = key in first
                    except TypeError:  # unhashable: PyYAML refuses it itself
                        repeated = False
                    else:
                        if not repeated:
                            first[key] = _line(key_node)
                    if repeated:
                        raise _Refused(
                            f"duplicate key (first at line {first[key]}); "
                            "YAML would silently keep the last",
                            _line(key_node),
                            label,
                        )
                else:
                    label = f"{path}.(complex key)" if path else "(complex key)"
                    stack.append((key_node, label))
                stack.append((value_node, label))


def parse_yaml(
    text: str,
    source: str,
    *,
    error: type[FileFormatError],
    max_depth: int = MAX_YAML_DEPTH,
    max_nodes: int = MAX_YAML_NODES,
) -> Any:
    """One YAML document from ``text`` (``None`` when empty), under the rules in
    the module docstring; ``source`` names it in errors."""
    try:
        loader = _BoundedLoader(text, max_depth, max_nodes)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        at = text[: exc.position].count("\n") + 1
        raise error(f"not valid YAML: {exc.reason}", file=source, line=at) from exc
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_duplicate_keys(loader, node)
        return loader.construct_document(node)
    except _Refused as exc:
        raise error(exc.reason, file=source, line=exc.line, key=exc.key) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else int(mark.line) + 1
        problem = exc.problem or exc.context or "cannot parse"
        raise error(f"not valid YAML: {problem}", file=source, line=line) from exc
    except yaml.YAMLError as exc:
        raise error(f"not valid YAML: {exc}", file=source) from exc
    except RecursionError as exc:  # pragma: no cover - the depth limit comes first
        raise error("nested too deeply to read", file=source) from exc
    finally:
        loader.dispose()


def load_yaml(
    path: Path,
    *,
    error: type[FileFormatError],
    what: str,
    max_bytes: int = MAX_YAML_BYTES,
) -> Any:
    """Read and parse one YAML file: size first, then UTF-8, then ``parse_yaml``.
    ``what`` names the kind of file in the size error ("a policy file")."""
    data = read_limited(path, limit=max_bytes, what=what, error=error)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(f"not valid UTF-8 (byte {exc.start})", file=str(path), line=line) from exc
    return parse_yaml(text, str(path), error=error)
