"""The rows of the weights check: one per installed (or expected) file, printed as a table by
`videoscene-backend check` and sent as JSON to the add-on (`weights_report`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

OK = "ok"
MISSING = "missing"
INVALID = "invalid"


@dataclass(frozen=True)
class CheckRow:
    path: str  # relative to the checkpoints folder
    status: str  # OK | MISSING | INVALID
    what: str  # what the file holds, or what is wrong with it
    needed_for: str  # the feature that reads it
    required: bool  # False: the feature falls back without it
    source: str  # where to get it

    @property
    def fails(self) -> bool:
        """A required file that is not usable, or any file that is there but broken."""
        return self.status == INVALID or (self.required and self.status != OK)


@dataclass
class WeightsReport:
    root: str
    rows: list[CheckRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(row.fails for row in self.rows)

    def summary(self) -> str:
        failing = [row for row in self.rows if row.fails]
        optional = [row.path for row in self.rows if not row.required and row.status == MISSING]
        if failing:
            named = ", ".join(f"{row.path} ({row.status})" for row in failing[:3])
            if len(failing) > 3:
                named += f" and {len(failing) - 3} more"
            text = f"{len(failing)} file(s) missing or invalid: {named}."
        else:
            text = "Every file the video model needs is in place and matches its model."
        if optional:
            text += f" Optional, not installed: {', '.join(optional)}."
        return text

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "ok": self.ok,
            "summary": self.summary(),
            "rows": [asdict(row) for row in self.rows],
        }

    def format_table(self) -> str:
        """Plain text, one block per file: status and path, what it is (or what is wrong),
        what reads it, and for a file that is not usable where to get it."""
        lines = [f"Weights under {self.root}", ""]
        for row in self.rows:
            mark = {OK: "ok", MISSING: "MISSING", INVALID: "INVALID"}[row.status]
            if row.status == MISSING and not row.required:
                mark = "optional"
            lines.append(f"[{mark}] {row.path}")
            lines.append(f"    {row.what}")
            lines.append(f"    for {row.needed_for}")
            if row.status != OK:
                lines.append(f"    source: {row.source}")
        lines += ["", ("OK: " if self.ok else "NOT READY: ") + self.summary()]
        return "\n".join(lines)
