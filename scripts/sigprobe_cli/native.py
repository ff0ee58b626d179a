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


def runner_args(window_scale: float) -> list[str]:
    if window_scale == 1.0:
        return []
    ms = lambda base: str(max(1, int(base * window_scale)))  # noqa: E731
    return ["--ready-ms", ms(2000), "--window-ms", ms(100), "--deadline-ms", ms(3000)]


def run_native(runner: Path, cell: Cell, window_scale: float = 1.0) -> dict:
    mult = float(os.environ.get("SIGPROBE_TIMEOUT_MULTIPLIER", "1") or 1) * window_scale
    try:
        r = subprocess.run([str(runner), *runner_args(window_scale), cell.id], capture_output=True,
                           text=True, timeout=RUNNER_SLACK_S * max(1.0, mult), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return error_outcome(cell, "the runner itself did not finish (harness bug)")
    line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    if r.returncode != 0 or not line:
        why = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit status {r.returncode}"
        return error_outcome(cell, f"sigprobe-run failed: {why}")
    try:
        outcome = json.loads(line)
    except json.JSONDecodeError as e:
        return error_outcome(cell, f"sigprobe-run printed a malformed outcome: {e}")
    if not isinstance(outcome, dict) or "verdict" not in outcome:
        return error_outcome(cell, "sigprobe-run printed an outcome without a verdict")
    return outcome
