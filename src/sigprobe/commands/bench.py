"""`sigprobe bench`: figures, not assertions. Kill → handler latency of
sigprobe's own `no-tty/sigaction/kill` cell side by side with a minimal C
baseline, the native cell overhead, latency per delivery path, and the wall
time of the native matrix at -j 1 and -j N (with a check that verdicts do
not change when every waiting window is 10× longer)."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .. import paths
from . import options


def add_parsers(sub) -> None:
    b = sub.add_parser("bench",
                       description="Prints figures (never asserts them): kill → handler latency of sigprobe's "
                                   "no-tty/sigaction/kill cell beside a minimal C baseline, the native cell "
                                   "overhead, latency per delivery path, and the native matrix's wall time at "
                                   "-j 1 and -j N with a verdict check against 10× longer windows.")
    b.add_argument("--samples", type=options.bounded_int(100_000), default=200, metavar="N",
                   help="samples per latency figure (default 200)")
    options.add_json(b, "the figures")
    options.add_build_dir(b)
    b.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    import tempfile

    from .list import prepare
    build_dir = prepare(args.build_dir)
    build_args = ["--build-dir", str(build_dir)] if args.build_dir else []
    with tempfile.TemporaryDirectory(prefix="sigprobe-bench-") as scratch:
        figures = run_bench(build_dir / paths.RUNNER, build_dir, build_args, args.samples, Path(scratch))
    print(json.dumps(figures, indent=2) if args.json else render(figures))
    return 0


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def summary(values: list[float]) -> dict:
    import statistics
    return {"n": len(values), "min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "p99": round(_pct(values, 0.99), 3), "max": round(max(values), 3)}


def baseline_latency_us(build_dir: Path, samples: int, *flags: str) -> list[float]:
    """flags: --fork-only, --new-session (bench/baseline.c)."""
    exe = build_dir / "sigprobe-baseline"
    r = subprocess.run([str(exe), str(samples), *flags], capture_output=True, text=True, check=True)
    return [int(x) / 1000.0 for x in r.stdout.split()]


def cell_sample(runner: Path, cell) -> tuple[float, float, float]:
    """One run's latency (µs), runner-internal spawn → verdict (ms), and the
    whole process round trip as a caller sees it (ms)."""
    from ..runners.native import run_native
    t0 = time.perf_counter()
    o = run_native(runner, cell)
    outer = (time.perf_counter() - t0) * 1000
    if o["verdict"] != "handled":
        raise RuntimeError(f"{cell.id}: {o['verdict']} ({o.get('reason')})")
    return o["fired"][0]["latency_us"], o["wall_us"] / 1000, outer


NATIVE = ["--only", "*/tty/*", "--only", "*/no-tty/*", "--only", "*/background/*"]


def matrix_wall(jobs: int, window_scale: float, build_args: list[str], only: list[str], repeat: int,
                scratch: Path) -> tuple[float, dict]:
    """The wall time of `sigprobe run` (this package, this interpreter) and its document."""
    name = "native" if only else "default"
    out = scratch / f"bench-{name}-r{repeat}-j{jobs}-w{window_scale:g}.json"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sigprobe", "run", "--quiet", "--repeat", str(repeat), "-j", str(jobs),
                    "--window-scale", str(window_scale), *build_args, "--out", str(out), *only],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    return wall, json.loads(out.read_text())


# Runs in a fresh interpreter (the one the module was built for) with the bench
# module on PYTHONPATH; prints the figures as JSON.
INTERRUPTIBLE = r"""
import json, statistics, threading
import sigprobe_interruptible_bench as b
rounds = 7
med = lambda xs: round(statistics.median(xs), 3)
out = {"default_interval_us": b.DEFAULT_US,
       "fast_path_ns": med([b.fast_path(5_000_000) for _ in range(rounds)]),
       "release_ns": med([b.release(100_000) for _ in range(rounds)])}
stop = []
def spin():  # another thread that wants the GIL, as a kernel's poller or control thread does
    while not stop:
        pass
t = threading.Thread(target=spin)
t.start()
out["release_with_a_thread_waiting_ns"] = med([b.release(2_000) for _ in range(rounds)])
stop.append(1)
t.join()
n, ratios, plain = 20_000_000, [], []
for _ in range(rounds):  # interleaved, so that both see the same moments of a noisy machine
    p = b.loop(n, b.DEFAULT_US, False)
    c = b.loop(n, b.DEFAULT_US, True)
    plain.append(p / n)
    ratios.append(c / p)
out["loop_ns_per_iteration"] = med(plain)
out["loop_slowdown_pct"] = round((statistics.median(ratios) - 1) * 100, 2)
print(json.dumps(out))
"""


def interruptible_cost(pyext_dir: Path) -> dict:
    """What sigprobe/interruptible.h costs (bench/interruptible_bench.c)."""
    env = dict(os.environ, PYTHONPATH=str(pyext_dir))
    r = subprocess.run([sys.executable, "-c", INTERRUPTIBLE], capture_output=True, text=True, env=env, timeout=600)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(r.stdout)


DEFAULT_ROUNDS = 3  # alternating rounds of the default matrix at -j 1 and the default -j (medians)


PM_QOS = "/dev/cpu_dma_latency"


@contextmanager
def shallow_idle():
    """Holds the CPUs out of deep idle states (a PM QoS request of 0 µs, held
    while the file stays open); yields what was done, in words."""
    try:
        fd = os.open(PM_QOS, os.O_WRONLY)
    except OSError as e:
        yield f"allowed ({PM_QOS}: {e.strerror})"
        return
    try:
        os.write(fd, struct.pack("i", 0))
        yield f"held off ({PM_QOS} = 0 µs)"
    finally:
        os.close(fd)


LATENCY_CELL = "linux/no-tty/sigaction/kill"


def latency_figures(runner: Path, build_dir: Path, samples: int) -> dict:
    """Kill → handler latency of LATENCY_CELL beside the bare baselines, and
    the cell's own overhead."""
    import statistics

    from .. import catalog as cellmod
    cell = cellmod.parse_id(LATENCY_CELL)
    # Interleaved in chunks, so that all see the same moments of a noisy
    # machine; with the CPUs' deep idle states held off where this process may
    # (cyclictest's way), so that a wake-up's cost is the signal's, not a
    # halted CPU's. The bare program (bench/baseline.c) in its own tight loop
    # (its parent and the signal path stay hot from one sample to the next),
    # its child in the parent's session or in one of its own; and started the
    # way a run is (one fresh process a sample from here), taken sample by
    # sample with sigprobe's runs so that each follows the others as often
    # (what ran just before moves a wake-up's placement on the CPUs, and the
    # latency with it, by 1-2 µs). Like for like: a fresh process a sample,
    # its child in a session of its own, as the cell's no-tty host is.
    arms = {k: [] for k in ("loop", "loop_new_session", "fork_only", "fresh", "fresh_new_session")}
    lat, inner, outer = [], [], []
    chunk = 20
    with shallow_idle() as idle:
        for start in range(0, samples, chunk):
            n = min(chunk, samples - start)
            arms["loop"] += baseline_latency_us(build_dir, n)
            arms["loop_new_session"] += baseline_latency_us(build_dir, n, "--new-session")
            arms["fork_only"] += baseline_latency_us(build_dir, n, "--fork-only")
            for _ in range(n):
                arms["fresh"] += baseline_latency_us(build_dir, 1)
                arms["fresh_new_session"] += baseline_latency_us(build_dir, 1, "--new-session")
                l, i, o = cell_sample(runner, cell)
                lat.append(l)
                inner.append(i)
                outer.append(o)
    median = statistics.median
    out = {"samples": samples, "deep_idle_states": idle}
    out.update({f"baseline_{k}_latency_us": summary(v) for k, v in arms.items()})
    out.update({
        "sigprobe_latency_us": summary(lat),
        "latency_ratio_median": round(median(lat) / median(arms["loop"]), 3),
        "latency_ratio_median_like_for_like": round(median(lat) / median(arms["fresh_new_session"]), 3),
        "cell_overhead_ms": summary(inner),
        "cell_round_trip_ms": summary(outer),
    })
    return out


def run_bench(runner: Path, build_dir: Path, build_args: list[str], samples: int, scratch: Path) -> dict:
    import statistics

    out = latency_figures(runner, build_dir, samples)
    out["interruptible_h"] = interruptible_cost(build_dir / "pyext")
    jobs = os.cpu_count() or 1
    verdicts = lambda d: {c["id"]: c["verdict"] for c in d["cells"]}  # noqa: E731
    # The native matrix, --repeat 3: serial, parallel, and with 10x windows.
    n1, d1 = matrix_wall(1, 1.0, build_args, NATIVE, 3, scratch)
    nN, dN = matrix_wall(jobs, 1.0, build_args, NATIVE, 3, scratch)
    n10, d10 = matrix_wall(jobs, 10.0, build_args, NATIVE, 3, scratch)
    v1, vN, v10 = verdicts(d1), verdicts(dN), verdicts(d10)
    # The whole default matrix (native, Python, Jupyter), --repeat 1, at -j 1
    # and the default -j in alternating rounds: one run of each moves by a
    # quarter with what else the machine does.
    f1s, fNs = [], []
    for _ in range(DEFAULT_ROUNDS):
        f1s.append(matrix_wall(1, 1.0, build_args, [], 1, scratch)[0])
        fN, full = matrix_wall(jobs, 1.0, build_args, [], 1, scratch)
        fNs.append(fN)
    f1, fN = statistics.median(f1s), statistics.median(fNs)
    per_path: dict[str, list[float]] = {}
    for c in full["cells"]:
        for r in c["runs"]:
            if r.get("fired"):
                per_path.setdefault(f"{c['host']}/{c['delivery']}", []).append(r["fired"][0]["latency_us"])
    py_cells = [c for c in full["cells"] if c["host"].startswith(("python", "jupyter"))]
    out.update({
        "latency_median_us_by_path": {k: round(statistics.median(v), 3) for k, v in sorted(per_path.items())},
        "native_matrix": {
            "cells": len(vN), "repeat": 3, "window_ms": dN["settings"].get("window_ms"),
            "wall_s_j1": round(n1, 3), f"wall_s_j{jobs}": round(nN, 3), f"wall_s_j{jobs}_windows_x10": round(n10, 3),
            "verdicts_equal_j1_jN": v1 == vN, "verdicts_equal_windows_x10": vN == v10,
            "differences": sorted(k for k in vN if vN[k] != v10.get(k) or vN[k] != v1.get(k)),
        },
        "default_matrix": {
            "cells": len(full["cells"]), "repeat": 1, "rounds": DEFAULT_ROUNDS,
            "wall_s_j1": round(f1, 3), f"wall_s_j{jobs}": round(fN, 3),
            f"wall_ratio_j{jobs}_to_j1": round(fN / f1, 3),
            "python_and_jupyter_cells": len(py_cells),
        },
    })
    return out


def _row(name, s, unit):
    return f"  {name:<31} median {s['median']:>9.3f} {unit}  min {s['min']:>9.3f}  p99 {s['p99']:>9.3f}  (n={s['n']})"


# The latency rows: label, figure, a note; each against the tight loop's median.
LATENCY_ROWS = (("its own tight loop", "baseline_loop_latency_us", ""),
                ("  child in a new session", "baseline_loop_new_session_latency_us", ""),
                ("  fork-only child", "baseline_fork_only_latency_us", ""),
                ("a fresh process a sample", "baseline_fresh_latency_us", ""),
                ("  child in a new session", "baseline_fresh_new_session_latency_us", "  ← like a run"),
                ("sigprobe no-tty/sigaction/kill", "sigprobe_latency_us", ""))


def render_latency(b: dict) -> str:
    loop = b["baseline_loop_latency_us"]["median"]
    return "\n".join([
        f"kill → handler latency (deep idle states {b['deep_idle_states']}); the bare baseline (bench/baseline.c):",
        *(_row(label, b[key], "µs") + f" ({b[key]['median'] / loop:.2f}×){note}" for label, key, note in LATENCY_ROWS),
        f"  sigprobe ÷ baseline (medians): {b['latency_ratio_median_like_for_like']:.2f}× like for like (what sigprobe "
        f"adds), {b['latency_ratio_median']:.2f}× the tight loop",
    ])


def render(b: dict) -> str:
    lines = [render_latency(b),
             "native cell overhead:",
             _row("spawn → verdict (runner)", b["cell_overhead_ms"], "ms"),
             _row("sigprobe-run round trip", b["cell_round_trip_ms"], "ms"),
             "sigprobe/interruptible.h (the recommended pattern):"]
    ih = b["interruptible_h"]
    if "error" in ih:
        lines.append(f"  not measured: {ih['error']}")
    else:
        lines += [f"  default interval             {ih['default_interval_us']} µs",
                  f"  a check, none due            {ih['fast_path_ns']:.2f} ns",
                  f"  a GIL release + re-take      {ih['release_ns']:.0f} ns, "
                  f"{ih['release_with_a_thread_waiting_ns']:.0f} ns with a thread waiting",
                  f"  tight loop checked each time {ih['loop_slowdown_pct']:+.2f} % "
                  f"(vs unchecked, {ih['loop_ns_per_iteration']:.2f} ns an iteration)"]
    lines.append("latency median by host/delivery (µs):")
    for k, v in b["latency_median_us_by_path"].items():
        lines.append(f"  {k:<28} {v:>9.3f}")
    for key, title in (("native_matrix", "native matrix"), ("default_matrix", "default matrix")):
        m = b[key]
        lines.append(f"{title} ({m['cells']} cells × {m['repeat']}"
                     + (f", medians of {m['rounds']} alternating rounds" if m.get("rounds") else "") + "):")
        for k, v in m.items():
            if k.startswith(("wall", "verdicts", "window")):
                lines.append(f"  {k:<28} {v}")
        if m.get("differences"):
            lines.append(f"  differing cells: {', '.join(m['differences'])}")
    return "\n".join(lines)
