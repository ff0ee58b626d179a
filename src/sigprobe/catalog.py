"""The catalog: cells, their selection, and the names sigprobe's documents use.

A cell id is platform/host/strategy/delivery. The names have one source each:
native cells are what the C runner lists (`sigprobe-run --list`, its C tables),
the extension probe's strategies are its `STRATEGIES`, and the verdicts are
VERDICTS below (the C side's sp_verdict names, checked by a test). Nothing else
on the Python side keeps a copy (tests/py/test_package.py looks)."""
from __future__ import annotations

import fnmatch
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput, BuildFailed

# The verdict of one run, in the order of harness/src/outcome.c; a cell whose
# runs disagree is FLAKY.
VERDICTS = ("handled", "deferred", "killed", "ignored", "not-delivered", "lost", "hung", "unsupported", "error")
FLAKY = "flaky"
# The verdicts whose cells carry reasons (why they could not run, hung, or disagree).
WITH_REASONS = ("unsupported", "error", "hung", FLAKY)
# The reference's At a glance (export/reference.py): the strategies worth
# considering, as its columns; the first of PREFERENCE that works in every
# measured cell of a situation is the one named for it.
GLANCE_STRATEGIES = ("recommended", "recommended+nogil", "check-signals", "check-signals+nogil",
                     "c-handler-per-call", "c-handler-import", "sigaction", "self-pipe", "sigwait-thread",
                     "signalfd", "console-ctrl", "event", "event-thread")
PREFERENCE = ("recommended", "recommended+nogil", "sigaction", "self-pipe", "signalfd", "sigwait-thread",
              "event", "console-ctrl", "check-signals+nogil", "check-signals", "event-thread", "c-handler-per-call")
# The strategies that take a signal without its delivery: they dequeue it.
DEQUEUERS = frozenset({"sigwait-thread", "signalfd", "signalfd-thread"})


# The strategy part of a `sigprobe check` subject's cells: code:NAME.
SUBJECT_PREFIX = "code:"
# The named selection (`--only subjects`) of the built-in subjects' cells,
# which the default selection leaves out (they answer another question).
SUBJECTS = "subjects"


@dataclass(frozen=True)
class Cell:
    id: str
    platform: str
    host: str
    strategy: str
    delivery: str
    kind: str = "native"  # which runner runs it: native (sigprobe-run), python, jupyter, subject


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


def pyext_strategies(pyext_dir: Path) -> list[str]:
    """The extension probe's strategies, as its STRATEGIES lists them (the C table is the source)."""
    from .remote.pyext_loader import load_pyext
    try:
        return list(load_pyext(str(pyext_dir)).STRATEGIES)
    except ImportError as e:
        raise BuildFailed(f"the extension probe is not built for {sys.executable}: {e}") from None


def strategies(cells: list[Cell]) -> list[str]:
    """The strategies of cells, in catalog order."""
    return _names(cells, "strategy")


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
    """Cells matching any of the globs (all cells but the subjects' when
    there are none; `subjects` names those). A glob reaches the subjects'
    cells only when it says `code:` (`linux/jupyter/code:*`), so that
    `linux/jupyter*` is the probes' cells, as before there were subjects.
    Each glob must match something, so a typo never selects silently less."""
    if not patterns:
        return [c for c in cells if c.kind != "subject"]
    chosen: set[str] = set()
    for pat in patterns:
        if pat == SUBJECTS:
            hits = {c.id for c in cells if c.kind == "subject"}
        else:
            hits = {c.id for c in cells if fnmatch.fnmatchcase(c.id, pat)
                    and (c.kind != "subject" or "code:" in pat)}
        if not hits:
            if any(ch in pat for ch in "*?["):
                raise BadInput(f"--only '{pat}' matches no cell (see `sigprobe list`)")
            raise BadInput(_explain_unknown(pat, cells))
        chosen |= hits
    return [c for c in cells if c.id in chosen]
