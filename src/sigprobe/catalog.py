"""The cell catalog and selection. A cell id is platform/host/strategy/delivery."""
from __future__ import annotations

import fnmatch
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput, BuildFailed


@dataclass(frozen=True)
class Cell:
    id: str
    platform: str
    host: str
    strategy: str
    delivery: str
    kind: str = "native"  # which runner runs it: native (sigprobe-run), python, jupyter


def parse_id(cell_id: str, kind: str = "native") -> Cell:
    parts = cell_id.split("/")
    if len(parts) != 4 or not all(parts):
        raise BadInput(f"bad cell id '{cell_id}': expected platform/host/strategy/delivery")
    return Cell(cell_id, *parts, kind=kind)


def native_cells(runner: Path) -> list[Cell]:
    """Every native cell, as the runner itself lists them (the C tables are the source)."""
    r = subprocess.run([str(runner), "--list"], capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildFailed(f"{runner} --list failed: {r.stderr.strip()}")
    return [parse_id(line) for line in r.stdout.split()]


def _names(cells: list[Cell], attr: str) -> list[str]:
    seen: list[str] = []
    for c in cells:
        v = getattr(c, attr)
        if v not in seen:
            seen.append(v)
    return seen


def _explain_unknown(pattern: str, cells: list[Cell]) -> str:
    """Names the part of a literal id that is unknown, with the valid names."""
    parts = pattern.split("/")
    if len(parts) == 4:
        for i, attr in enumerate(("platform", "host", "strategy", "delivery")):
            valid = _names(cells, attr)
            if parts[i] not in valid:
                return f"unknown {attr} '{parts[i]}' in '{pattern}' (valid: {', '.join(valid)})"
    return f"unknown cell '{pattern}' (see `sigprobe list`)"


def select(cells: list[Cell], patterns: list[str] | None) -> list[Cell]:
    """Cells matching any of the globs (all cells when there are none).
    Each glob must match something, so a typo never selects silently less."""
    if not patterns:
        return list(cells)
    chosen: set[str] = set()
    for pat in patterns:
        hits = {c.id for c in cells if fnmatch.fnmatchcase(c.id, pat)}
        if not hits:
            if any(ch in pat for ch in "*?["):
                raise BadInput(f"--only '{pat}' matches no cell (see `sigprobe list`)")
            raise BadInput(_explain_unknown(pat, cells))
        chosen |= hits
    return [c for c in cells if c.id in chosen]
