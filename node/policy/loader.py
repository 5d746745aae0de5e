"""Read policy files and report errors that name the file, the key and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from node.errors import PolicyError, PolicyFileError
from node.policy.floor import RegionalFloor
from node.policy.model import Policy
from node.yamlsafe import load_yaml


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(top level)"


def format_validation_error(source: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {_key_path(tuple(err['loc']))}: {msg}")
    return "\n".join(lines)


def parse_policy(data: Any, source: str) -> Policy:
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: (top level): a policy is a mapping of keys")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(format_validation_error(source, exc)) from exc


def load_policy(path: Path, floor: RegionalFloor | None = None) -> Policy:
    """Load and validate one policy file; with ``floor``, reject a policy weaker
    than the regional floor, naming each key that is."""
    policy = parse_policy(_read_yaml(path), str(path))
    if floor is not None:
        problems = floor.problems(policy)
        if problems:
            raise PolicyError("\n".join(f"{path}: {key}: {problem}" for key, problem in problems))
    return policy


def load_floor(path: Path) -> RegionalFloor:
    """Load and validate the regional floor (``policies/regional.yaml``)."""
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: (top level): the floor is a mapping of keys")
    try:
        return RegionalFloor.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(format_validation_error(str(path), exc)) from exc


def _read_yaml(path: Path) -> Any:
    """Through the one YAML loader: size, depth and duplicate keys are refused
    with the file, line and key (node/yamlsafe.py)."""
    return load_yaml(path, error=PolicyFileError, what="a policy file")
