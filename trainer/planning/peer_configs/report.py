"""The mapping report every peer importer and exporter fills in: one line per key of the source file.

Nothing read is left out of the report. Each key of the source file ends up in exactly one list:

- `mapped`: carried over with the same meaning (the value may be re-spelt, e.g. `2.0e-4` -> 0.0002);
- `changed`: carried over, but the value or its meaning changes, and `why` says how;
- `not_supported`: no equivalent; `nearest` names the closest feature, or says "unsupported";
- `empty`: the key is present with no value (YAML `key:`), so the peer's default applies and nothing is carried.

`defaults` lists settings the source file leaves out whose peer default differs from tunepilot's, and
which the importer therefore writes explicitly (so the run behaves as it did on the peer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUSES = ("mapped", "changed", "not_supported", "empty")


@dataclass
class KeyReport:
    key: str  # the key in the source file (dotted / indexed for nested ones: datasets[0].type)
    value: Any
    status: str  # one of STATUSES, or "default" for an entry of `defaults`
    target: str | None = None  # the dotted key it became
    new_value: Any = None
    why: str = ""  # changed: what changed; not_supported: the nearest feature or "unsupported"

    def to_dict(self) -> dict:
        out = {"key": self.key, "value": self.value}
        if self.target is not None:
            out["target"] = self.target
            out["new_value"] = self.new_value
        if self.status == "not_supported":
            out["nearest"] = self.why or "unsupported"
        elif self.why:
            out["why"] = self.why
        return out


@dataclass
class MappingReport:
    """What one conversion did; `data` is the converted file's content (a tunepilot config or a peer config)."""

    source_format: str
    target_format: str
    data: dict = field(default_factory=dict)
    entries: list[KeyReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: dict[str, dict] = field(default_factory=dict)  # extra files the target needs (name -> JSON data)

    def add(self, key: str, value: Any, status: str, target: str | None = None, new_value: Any = None, why: str = "") -> None:
        self.entries.append(KeyReport(key, value, status, target, new_value, why))

    def of(self, status: str) -> list[KeyReport]:
        return [e for e in self.entries if e.status == status]

    def keys(self) -> set[str]:
        return {e.key for e in self.entries if e.status != "default"}

    def to_dict(self) -> dict:
        out: dict = {"from": self.source_format, "to": self.target_format}
        for status in STATUSES:
            out[status] = [e.to_dict() for e in self.of(status)]
        out["defaults"] = [e.to_dict() for e in self.of("default")]
        out["notes"] = list(self.notes)
        if self.files:
            out["files"] = dict(self.files)
        out["counts"] = {s: len(self.of(s)) for s in (*STATUSES, "default")}
        return out
