"""Running native cells through the C runner, one process per run."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .cells import Cell

# The runner has its own deadlines (ready 2 s + delivery→exit 3 s, scaled by
# SIGPROBE_TIMEOUT_MULTIPLIER); this outer bound only catches a runner bug.
RUNNER_SLACK_S = 30.0


def error_outcome(cell: Cell, reason: str) -> dict:
    return {"id": cell.id, "host": cell.host, "strategy": cell.strategy, "delivery": cell.delivery,
            "verdict": "error", "reason": reason, "fired": [], "exit": {"kind": "none"}}


def scaled_env(window_scale: float) -> dict | None:
    """Every waiting window scaled through the one knob the runner has."""
    if window_scale == 1.0:
        return None
    base = float(os.environ.get("SIGPROBE_TIMEOUT_MULTIPLIER", "1") or 1)
    return dict(os.environ, SIGPROBE_TIMEOUT_MULTIPLIER=str(base * window_scale))


def run_native(runner: Path, cell: Cell, window_scale: float = 1.0) -> dict:
    mult = float(os.environ.get("SIGPROBE_TIMEOUT_MULTIPLIER", "1") or 1) * window_scale
    try:
        r = subprocess.run([str(runner), cell.id], capture_output=True, text=True, env=scaled_env(window_scale),
                           timeout=RUNNER_SLACK_S * max(1.0, mult), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return error_outcome(cell, "the runner itself did not finish (harness bug)")
    return parse_outcome(cell, r)


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
