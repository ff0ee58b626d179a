"""The results document as a checkpoint of a run, and resuming one.

During `sigprobe run` the document on disk is rewritten (atomically: temporary
file, fsync, rename) whenever runs finished since the last write, at most
CHECKPOINT_S apart, and once at the end. It holds every run finished so far: a
cell with fewer runs than asked carries `runs_done` and `runs_asked`, and the
document `"partial": true`. So whatever ends the run (Ctrl+C, SIGTERM, SIGHUP,
SIGKILL, a power loss) leaves a valid document that lacks at most the last
CHECKPOINT_S of measurements, and `sigprobe run --resume FILE` runs only the
missing repeats."""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from . import document as results
from ..errors import BadInput

CHECKPOINT_S = 1.0  # the bound is 2 s; half of it leaves room for a slow write

# What must be the same for runs to be pooled into one cell: the settings that
# change what a run measures, and the interpreter and Jupyter generation.
RESUME_SETTINGS = ("repeat", "window_scale", "only", "fresh_kernels", "window_ms", "trace")
RESUME_MACHINE = ("python", "python_executable", "ipykernel", "jupyter_client", "pyzmq", "libc", "wine")


class Checkpoint:
    """Gathers outcomes per cell (from any thread), reports a cell when all its
    runs are in, and keeps the document at `out` current."""

    def __init__(self, out: Path, selected, repeat: int, progress, header, prior: dict | None = None):
        """header() -> (platform, machine, settings) for the document as it is now;
        prior: {cell id: [outcome, ...]} already measured (--resume)."""
        self.out, self.repeat, self.progress, self.header = out, repeat, progress, header
        self.selected = list(selected)
        self.order = {c.id: i for i, c in enumerate(self.selected)}
        self.outcomes: dict[str, list[dict]] = {c.id: list((prior or {}).get(c.id, [])) for c in self.selected}
        # Runs each cell is to have: the repeat, or more for a flaky one (more_for_flaky).
        self.target: dict[str, int] = {c.id: repeat for c in self.selected}
        # Each run as compact JSON, made once: a checkpoint splices these
        # rather than encoding every run again each time (see _compact).
        self.encoded: dict[str, list[str]] = {cid: [json.dumps(r) for r in runs]
                                              for cid, runs in self.outcomes.items()}
        self.summaries: dict[str, tuple[int, str]] = {}  # cell id -> (runs, its summary without them)
        self.lock = threading.Lock()
        self.dirty = self.sealed = False
        self.writes, self.write_s = 0, 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def todo(self) -> list:
        """The (cell, repeat index) pairs still to run, round by round, so that an
        interruption leaves every cell with about as many runs as the others;
        a cell expected to be flaky (expect_flaky) has its extra rounds after those."""
        rounds = max(self.target.values(), default=0)
        return [(c, i) for i in range(rounds) for c in self.selected
                if len(self.outcomes[c.id]) <= i < self.target[c.id]]

    def expect_flaky(self, ids, bound: int) -> set:
        """The cells among `ids` (flaky in the document this run replaces) get
        `bound` runs from the start, whatever their first runs say: three runs
        of a cell that goes one way in four agree about half the time, and two
        runs of the matrix would call it flaky once and steady the next. Their
        extra runs are then in todo() beside every other cell's runs, not in a
        round after them that starts its kernels again. Returns those ids."""
        with self.lock:
            expected = {cid for cid in ids if cid in self.target and self.target[cid] < bound}
            for cid in expected:
                self.target[cid] = bound
        return expected

    def seal(self) -> None:
        """No run is added from now on: after an interrupt, what is still
        reported (runs the interrupt cut short) is not a measurement."""
        with self.lock:
            self.sealed = True

    def more_for_flaky(self, bound: int, among=None) -> list:
        """The runs that take every cell whose runs disagree up to `bound` runs,
        so that the document gives its proportions ("handled in 11 of 20"),
        not a coin toss of three; round by round, like todo(). among: only
        these cell ids (a group whose first runs are all in), else every cell."""
        by_id = {c.id: c for c in self.selected}
        with self.lock:
            flaky = [cid for cid, runs in self.outcomes.items()
                     if (among is None or cid in among)
                     and len({r["verdict"] for r in runs}) > 1 and len(runs) < bound]
            for cid in flaky:
                self.target[cid] = bound
            have = {cid: len(self.outcomes[cid]) for cid in flaky}
        return [(by_id[cid], i) for i in range(bound) for cid in flaky if i >= have[cid]]

    def add(self, cell, outcome: dict) -> None:
        encoded = json.dumps(outcome)
        with self.lock:
            if self.sealed:
                return
            runs = self.outcomes[cell.id]
            runs.append(outcome)
            self.encoded[cell.id].append(encoded)
            self.dirty = True
            finished = results.aggregate(cell.id, runs) if len(runs) == self.target[cell.id] else None
        if finished:
            self.progress.cell_finished(finished)

    def cells(self) -> list[dict]:
        with self.lock:
            return [results.aggregate(cid, list(runs), self.target[cid])
                    for cid, runs in sorted(self.outcomes.items(), key=lambda kv: self.order[kv[0]]) if runs]

    def complete(self) -> bool:
        with self.lock:
            return all(len(runs) >= self.target[cid] for cid, runs in self.outcomes.items())

    def write(self, partial: bool) -> dict:
        """Writes the document as it stands, pretty-printed; returns it."""
        with self.lock:
            self.dirty = False
        platform, machine, settings = self.header()
        doc = results.document(platform, machine, settings, self.cells(), partial=partial)
        results.write_atomically(self.out, results.dumps(doc))
        return doc

    def _checkpoint(self) -> None:
        """The same document, partial, as compact JSON: a checkpoint's cost is
        encoding the cells' summaries and splicing the runs already encoded."""
        t0 = time.perf_counter()
        with self.lock:
            self.dirty = False
            snapshot = [(cid, list(self.outcomes[cid]), list(self.encoded[cid]))
                        for cid in sorted(self.outcomes, key=self.order.get) if self.outcomes[cid]]
        platform, machine, settings = self.header()
        cells = []
        for cid, runs, encoded in snapshot:
            n, summary = self.summaries.get(cid, (0, ""))
            if n != len(runs):  # only the cells with new runs are summarised again
                summary = results.aggregate(cid, runs, self.target[cid])
                del summary["runs"]
                summary = json.dumps(summary)[:-1]
                self.summaries[cid] = (len(runs), summary)
            cells.append(summary + ', "runs": [' + ", ".join(encoded) + "]}")
        head = json.dumps(results.document(platform, machine, settings, [], partial=True))
        assert head.endswith('"cells": []}')
        results.write_atomically(self.out, head[:-3] + "[" + ", ".join(cells) + "]}\n")
        self.writes += 1
        self.write_s += time.perf_counter() - t0

    def _loop(self) -> None:
        while not self._stop.wait(CHECKPOINT_S):
            if self.dirty:
                try:
                    self._checkpoint()
                except BadInput:
                    pass  # a full disk now: the final write says so, once

    def __enter__(self):
        self._thread = threading.Thread(target=self._loop, name="checkpoint", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()


def prior_runs(doc: dict) -> dict[str, list[dict]]:
    return {c["id"]: list(c.get("runs") or []) for c in doc["cells"]}


def resume_conflict(doc: dict, platform: str, machine: dict, settings: dict) -> str | None:
    """The first difference that forbids pooling this run with the document's
    runs, as words, or None."""
    if doc.get("platform") != platform:
        return f"it was measured on {doc.get('platform')!r}, this is {platform!r}"
    old_m = doc.get("machine") or {}
    for key in RESUME_MACHINE:
        if key in old_m or key in machine:
            if old_m.get(key) != machine.get(key):
                return f"its {key} is {old_m.get(key)!r}, here it is {machine.get(key)!r}"
    old_s = doc.get("settings") or {}
    for key in RESUME_SETTINGS:
        if (key in old_s or key in settings) and old_s.get(key) != settings.get(key):
            return f"its {key} is {old_s.get(key)!r}, this run's is {settings.get(key)!r}"
    return None


def apply_resume(args, default_repeat: int) -> dict | None:
    """Settles `sigprobe run`'s settings: without --resume the defaults; with
    it, the document's (an explicit flag that differs is refused, naming it).
    Returns the runs the document already has ({} without --resume), or None
    when the document is complete and there is nothing to do."""
    args.resume_doc = {}
    if not args.resume:
        args.platform = args.platform or "native"
        args.repeat = args.repeat or default_repeat
        args.window_scale = args.window_scale or 1.0
        return {}
    doc = results.load(args.resume)
    old = doc.get("settings") or {}
    wine = doc.get("platform") == "windows-wine"
    wanted = {"platform": "windows-wine" if wine else "native", "repeat": old.get("repeat"),
              "window_scale": old.get("window_scale", 1.0), "only": old.get("only") or None,
              "fresh_kernels": bool(old.get("fresh_kernels")), "trace": "trace" in old}
    if not isinstance(wanted["repeat"], int) or not 1 <= wanted["repeat"] <= 1000:
        raise BadInput(f"--resume {args.resume}: its settings lack a valid repeat")
    for key, value in wanted.items():
        given = getattr(args, key)
        if given not in (None, False) and given != value:
            flag = "--" + key.replace("_", "-")
            raise BadInput(f"--resume {args.resume}: {flag} {given!r} differs from the document's {value!r}")
        setattr(args, key, value)
    python = (doc.get("machine") or {}).get("python_executable")
    if not args.python and python and not wine and not _is_project_python(python):
        args.python = python
    args.out = args.out or args.resume
    args.resume_doc = doc
    if not doc.get("partial"):
        print(f"sigprobe: {args.resume} is complete: nothing to resume", file=sys.stderr)
        return None
    return prior_runs(doc)


def _is_project_python(python: str) -> bool:
    """The interpreter the Python cells run under by default: sigprobe's own."""
    try:
        return os.path.samefile(python, sys.executable)
    except OSError:
        return False
