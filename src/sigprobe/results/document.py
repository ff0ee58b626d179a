"""Aggregating outcomes into cells, and the results document (sigprobe-results/1)."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform as _platform
import statistics
import secrets
import sys
from collections import Counter
from pathlib import Path

from ..catalog import FLAKY, VERDICTS
from ..errors import BadInput

SCHEMA = "sigprobe-results/1"
# The full native + Python + Jupyter matrix at --repeat 10 is a few MiB.
MAX_DOCUMENT_BYTES = 64 << 20


def first_latency_us(outcome: dict) -> float | None:
    fired = outcome.get("fired") or []
    return fired[0].get("latency_us") if fired else None


def flaky_rate(cell: dict) -> str:
    """`handled 2/3, deferred 1/3` for a flaky cell."""
    total = sum(cell.get("counts", {}).values()) or 1
    return ", ".join(f"{v} {n}/{total}" for v, n in sorted(cell.get("counts", {}).items(), key=lambda kv: -kv[1]))


def aggregate(cell_id: str, runs: list[dict], asked: int | None = None) -> dict:
    """One cell over its runs: the common verdict, or `flaky` when runs disagree.
    With fewer runs than `asked` (an interrupted run's checkpoint) the cell
    says so: `runs_done` and `runs_asked`, and its verdict is only that of the
    runs it has."""
    first = runs[0]
    counts = Counter(r["verdict"] for r in runs)
    cell = {
        "id": cell_id,
        "host": first.get("host"),
        "strategy": first.get("strategy"),
        "delivery": first.get("delivery"),
        "verdict": next(iter(counts)) if len(counts) == 1 else "flaky",
        "counts": dict(sorted(counts.items())),
    }
    handlers = Counter(r["fired"][0]["handler"] for r in runs if r.get("fired"))
    if handlers:
        cell["first_handler"] = dict(sorted(handlers.items()))
    lat = [x for x in (first_latency_us(r) for r in runs) if x is not None]
    if lat:
        cell["latency_us"] = {"min": min(lat), "median": round(statistics.median(lat), 3), "max": max(lat)}
    reasons = sorted({r["reason"] for r in runs if r.get("reason")})
    if reasons:
        cell["reasons"] = reasons
    notes = sorted({r["note"] for r in runs if r.get("note")})
    if notes:
        cell["notes"] = notes
    if asked is not None and len(runs) < asked:
        cell["runs_done"], cell["runs_asked"] = len(runs), asked
    cell["runs"] = runs
    return cell


def incomplete(cell: dict) -> str:
    """'' for a cell with all its runs, else 'incomplete: k of n runs'."""
    if "runs_done" not in cell:
        return ""
    return f"incomplete: {cell['runs_done']} of {cell.get('runs_asked', '?')} runs"


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return f"{_platform.system()} {_platform.release()}"


AUTOGROUP = Path("/proc/sys/kernel/sched_autogroup_enabled")


def sched_autogroup() -> str:
    """Linux: whether a new session is also a new scheduling group. It moves
    the latency of a signal to a process leading its own session (the no-tty
    host's probe, a Jupyter kernel) by up to 2x: see `sigprobe bench`."""
    try:
        return "on" if AUTOGROUP.read_text().strip() != "0" else "off"
    except OSError:
        return "not in this kernel"


def machine_info(runner_version: dict, extra: dict | None = None) -> dict:
    m = {
        "os": _os_release(),
        "kernel": f"{_platform.system()} {_platform.release()}",
        "arch": _platform.machine(),
        "libc": runner_version.get("libc"),
        "compiler": runner_version.get("compiler"),
        "cpu_count": os.cpu_count(),
    }
    if sys.platform.startswith("linux"):
        m["sched_autogroup"] = sched_autogroup()
    if extra:
        m.update(extra)
    return m


def document(platform: str, machine: dict, settings: dict, cells: list[dict], partial: bool = False) -> dict:
    doc = {
        "schema": SCHEMA,
        "platform": platform,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "machine": machine,
        "settings": settings,
    }
    if partial:
        doc["partial"] = True
    doc["cells"] = cells
    return doc


def _create_beside(path: Path) -> tuple[int, str]:
    """A new temporary file in path's directory, created with mode 0666 so the
    umask applies as to any other tool's output (mkstemp's 0600 would make a
    shared results directory or a CI artifact unreadable to others)."""
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def write_atomically(path: Path, text: str) -> None:
    """Temporary file + rename: a crash never leaves half a document (the
    target is the old document or the new one, never a mix); any other
    failure removes the temporary file and is one BadInput line."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_beside(path)
    except OSError as e:
        raise BadInput(f"{path}: cannot write: {e.strerror}") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # the rename must not overtake the data after a power loss
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise BadInput(f"{path}: cannot write: {e.strerror}") from None
        raise


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=2) + "\n"


def load(path: Path) -> dict:
    """Reads and checks a results document; every problem is one BadInput line."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as e:
        raise BadInput(f"{path}: cannot read: {e.strerror}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise BadInput(f"{path}: larger than {MAX_DOCUMENT_BYTES // (1 << 20)} MiB: not a results document")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadInput(f"{path}: not UTF-8 text (byte {e.start})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}: not JSON (truncated?): {e.msg} at line {e.lineno}") from None
    except RecursionError:
        raise BadInput(f"{path}: not a results document: nested too deeply") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise BadInput(f"{path}: wrong schema {got!r} (expected {SCHEMA!r})")
    cells = doc.get("cells")
    if not isinstance(cells, list):
        raise BadInput(f"{path}: \"cells\" is missing or not a list")
    for i, c in enumerate(cells):
        if not isinstance(c, dict) or not isinstance(c.get("id"), str) or c.get("verdict") not in (*VERDICTS, FLAKY):
            raise BadInput(f"{path}: cell {i} lacks an id or a known verdict")
        if "runs_done" in c and not (isinstance(c["runs_done"], int) and isinstance(c.get("runs_asked"), int)
                                     and 0 < c["runs_done"] < c["runs_asked"]):
            raise BadInput(f"{path}: cell {c['id']} has a malformed runs_done/runs_asked")
    return doc
