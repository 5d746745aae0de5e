"""What applying a batch of messages did: how many were read, applied,
already held, older than the picture's revision, or set aside and why
(the reasons of ``node.aggregator.apply``). ``aggregate`` prints it, the
follow loop's metrics count it, and a rebuild reports it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ApplyStats:
    messages: int = 0
    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def add(self, other: ApplyStats) -> None:
        self.messages += other.messages
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.stale += other.stale
        for reason, n in other.rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + n

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "stale": self.stale,
            "rejected": self.rejected_total,
            "rejected_by_reason": dict(sorted(self.rejected.items())),
        }
