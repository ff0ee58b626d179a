"""Running native cells through the C runner, one process per run."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from ..catalog import Cell
from ..errors import BadInput

# The runner has its own deadlines (ready 10 s + delivery→exit 3 s, scaled by
# SIGPROBE_TIMEOUT_MULTIPLIER); this outer bound only catches a runner bug.
RUNNER_SLACK_S = 30.0


def error_outcome(cell: Cell, reason: str) -> dict:
    return {"id": cell.id, "host": cell.host, "strategy": cell.strategy, "delivery": cell.delivery,
            "verdict": "error", "reason": reason, "fired": [], "exit": {"kind": "none"}}


MULTIPLIER_MAX = 1000  # the runner's SP_TIMEOUT_MULTIPLIER_MAX


def base_multiplier() -> float:
    """SIGPROBE_TIMEOUT_MULTIPLIER as the runner reads it; BadInput when invalid."""
    text = os.environ.get("SIGPROBE_TIMEOUT_MULTIPLIER", "") or "1"
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not 0 < v <= MULTIPLIER_MAX:
        raise BadInput(f"SIGPROBE_TIMEOUT_MULTIPLIER must be a number above 0 and at most {MULTIPLIER_MAX}, "
                       f"not {text!r}")
    return v


def check_window_scale(window_scale: float) -> None:
    if base_multiplier() * window_scale > MULTIPLIER_MAX:
        raise BadInput(f"--window-scale {window_scale:g} times SIGPROBE_TIMEOUT_MULTIPLIER "
                       f"{base_multiplier():g} is above {MULTIPLIER_MAX}")


def scaled_env(window_scale: float) -> dict | None:
    """Every waiting window scaled through the one knob the runner has."""
    if window_scale == 1.0:
        return None
    return dict(os.environ, SIGPROBE_TIMEOUT_MULTIPLIER=repr(base_multiplier() * window_scale))


# The runners running now, so that an interrupted `sigprobe run` can end them
# (each kills its probe's tree on SIGTERM) instead of waiting for their cells.
_LOCK = threading.Lock()
_RUNNING: set[subprocess.Popen] = set()
_STOPPING = False


class Stopped(Exception):
    """No new runner starts once terminate_runners() was called."""


def run_runner(args: list[str], env: dict | None, timeout: float) -> subprocess.CompletedProcess:
    """Runs one runner to its end, registered so terminate_runners() can reach it.
    Raises subprocess.TimeoutExpired (the runner is killed) or Stopped."""
    with _LOCK:
        if _STOPPING:
            raise Stopped()
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
        _RUNNING.add(p)
    try:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise
        return subprocess.CompletedProcess(args, p.returncode, out, err)
    finally:
        with _LOCK:
            _RUNNING.discard(p)


def terminate_runners(sig: int = signal.SIGTERM) -> None:
    """Ends every running runner (it kills its probe's tree, then itself) and
    starts no new one. Safe from any thread."""
    global _STOPPING
    with _LOCK:
        _STOPPING = True
        for p in _RUNNING:
            try:
                p.send_signal(sig)  # still ours: Popen reaps only under communicate()
            except OSError:
                pass


# The window after delivery in which a native handler must have fired: a wide
# margin over the kill → handler latency measured on this machine.
WINDOW_MARGIN = 1000
WINDOW_MIN_MS, WINDOW_MAX_MS = 20, 100


def calibrate_window_ms(baseline: Path, samples: int = 40) -> tuple[int, dict]:
    """WINDOW_MARGIN × the p99 latency the C baseline measures now, kept
    between WINDOW_MIN_MS and WINDOW_MAX_MS (the runner's own default)."""
    r = subprocess.run([str(baseline), str(samples)], capture_output=True, text=True, timeout=60)
    lat_us = sorted(int(x) / 1000 for x in r.stdout.split()) if r.returncode == 0 else []
    if not lat_us:
        return WINDOW_MAX_MS, {"window_ms": WINDOW_MAX_MS, "calibration": "baseline failed: default window"}
    p99 = lat_us[min(len(lat_us) - 1, int(0.99 * (len(lat_us) - 1) + 0.5))]
    ms = int(min(WINDOW_MAX_MS, max(WINDOW_MIN_MS, WINDOW_MARGIN * p99 / 1000)))
    return ms, {"window_ms": ms, "calibration": {"baseline_p99_us": round(p99, 3), "samples": len(lat_us),
                                                 "margin": WINDOW_MARGIN}}


def run_native(runner: Path, cell: Cell, window_scale: float = 1.0, window_ms: int | None = None) -> dict:
    mult = base_multiplier() * window_scale
    args = [str(runner)]
    if window_ms:
        # An explicit window is not scaled by the runner: scale it here.
        args += ["--window-ms", str(max(1, int(window_ms * mult)))]
    try:
        r = run_runner([*args, cell.id], scaled_env(window_scale), RUNNER_SLACK_S * max(1.0, mult))
    except subprocess.TimeoutExpired:
        return error_outcome(cell, "the runner itself did not finish (harness bug)")
    except Stopped:
        return error_outcome(cell, "not run: sigprobe was interrupted")
    return parse_outcome(cell, r)


# ---- what escapes a runner ---------------------------------------------------
# Each runner is a child subreaper and cleans up after its probe. Should a
# runner itself die outright (SIGKILL), its probe dies too (PR_SET_PDEATHSIG),
# but a grandchild that left the probe's process group would be re-parented
# to init: `sigprobe run` is a subreaper as well, so such orphans come here,
# and reap_orphans() ends them once no runner is running.

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Linux only; returns whether this process is now a child subreaper."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def children() -> list[int]:
    pids: list[int] = []
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as f:
                pids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return pids


def reap_orphans(keep: set[int] = frozenset()) -> int:
    """Kills and reaps every child of this process except `keep`: call it only
    when no runner or driver of ours is running. Returns how many it ended."""
    ended = 0
    for _ in range(100):
        found = [pid for pid in children() if pid not in keep]
        if not found:
            break
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)  # an unreaped child: its pid cannot be reused
            except OSError:
                pass
        for pid in found:
            try:
                os.waitpid(pid, 0)
                ended += 1
            except ChildProcessError:
                pass
    return ended


def parse_outcome(cell: Cell, r: subprocess.CompletedProcess, who: str = "sigprobe-run") -> dict:
    """The runner's one outcome line, or an error outcome saying what went wrong."""
    line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    if r.returncode != 0 or not line:
        why = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit status {r.returncode}"
        return error_outcome(cell, f"{who} failed: {why}")
    try:
        outcome = json.loads(line)
    except json.JSONDecodeError as e:
        return error_outcome(cell, f"{who} printed a malformed outcome: {e}")
    if not isinstance(outcome, dict) or "verdict" not in outcome:
        return error_outcome(cell, f"{who} printed an outcome without a verdict")
    return outcome
