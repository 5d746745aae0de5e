"""What ``corredor doctor`` reports: each check passed, failed or skipped, and the
figures an operator watches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: skipped
    detail: str


@dataclass
class DoctorReport:
    role: str
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "healthy": self.healthy,
            "checks": [
                {"name": c.name, "status": _status(c.ok), "detail": c.detail} for c in self.checks
            ],
            "figures": self.figures,
        }

    def add(self, name: str, ok: bool | None, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok is True


def _status(ok: bool | None) -> str:
    return "skipped" if ok is None else ("ok" if ok else "problem")
