"""`sigprobe run`: runs the selected cells N times each, prints the matrix and
writes the results document; on SIGINT/SIGTERM it writes what finished,
marked partial."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple, Optional

from .. import paths
from ..errors import BadInput
from . import options

DEFAULT_REPEAT = 3


def add_parsers(sub) -> None:
    run = sub.add_parser("run", help="run cells, print the matrix, write the results document",
                         description="Runs the selected cells N times each, prints the matrix and writes "
                                     "<results>/<platform>.json and .md (or --out): results/ in a clone of the "
                                     "repository, ./sigprobe-results/ where sigprobe is installed.")
    options.add_platform(run, "this machine's cells, native, Python and Jupyter")
    options.add_only(run, ", e.g. 'linux/no-tty/*'")
    run.add_argument("--repeat", type=options.bounded_int(1000), default=DEFAULT_REPEAT, metavar="N",
                     help=f"runs per cell (default {DEFAULT_REPEAT}); runs that disagree make the cell flaky")
    run.add_argument("-j", "--jobs", type=options.bounded_int(256), default=os.cpu_count() or 1, metavar="N",
                     help=f"cells run in parallel (default: the number of cores, {os.cpu_count()})")
    run.add_argument("--out", type=Path, metavar="FILE",
                     help=f"results document to write (default {paths.rel(paths.results_dir())}/<platform>.json; "
                          "the Markdown matrix goes beside it with .md)")
    run.add_argument("--window-scale", type=options.positive_float, default=1.0, metavar="K",
                     help="multiply every waiting window by K (default 1; 10 checks that verdicts do "
                          "not depend on the windows)")
    run.add_argument("--python", metavar="PATH",
                     help="interpreter for the Python and Jupyter cells, with its own ipykernel and "
                          "jupyter_client (default: the one sigprobe runs under); the extension probe is built for it")
    run.add_argument("--fresh-kernels", action="store_true",
                     help="start a fresh kernel for every Jupyter run (slower; checks that reusing kernels "
                          "changes no verdict)")
    options.add_build_dir(run)
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    run.add_argument("--trace", action="store_true",
                     help="record the kernel's side of every native run (signal:signal_generate and "
                          "signal_deliver through tracefs, in a private trace instance; Linux, root): each "
                          "outcome gains `trace` and `kernel`; where tracing is impossible, the reason")
    run.set_defaults(func=cmd_run)


class RunSettings(NamedTuple):
    """What a run was asked for: what execute() and the results' `settings` read
    (the argparse namespace stops at cmd_run)."""
    repeat: int
    jobs: int
    window_scale: float
    only: tuple
    fresh_kernels: bool
    quiet: bool
    out: Optional[Path]

    @classmethod
    def from_args(cls, args) -> RunSettings:
        return cls(args.repeat, args.jobs, args.window_scale, tuple(args.only or ()), args.fresh_kernels,
                   args.quiet, args.out)


class Progress:
    def __init__(self, total: int, quiet: bool):
        self.total, self.done, self.quiet = total, 0, quiet
        self.t0 = time.monotonic()

    def cell_finished(self, cell: dict) -> None:
        from ..export import matrix as render
        self.done += 1
        if self.quiet:
            return
        print(f"[{self.done:>{len(str(self.total))}}/{self.total}] {cell['id']:<44} "
              f"{render.cell_text(cell)}", file=sys.stderr, flush=True)


class Collector:
    """Gathers outcomes per cell; a cell is finished (aggregated, reported)
    when all its runs are in."""

    def __init__(self, selected, repeat: int, progress: Progress):
        self.order = {c.id: i for i, c in enumerate(selected)}
        self.outcomes: dict[str, list[dict]] = {c.id: [] for c in selected}
        self.repeat, self.progress = repeat, progress
        self.finished: list[dict] = []

    def add(self, cell, outcome: dict) -> None:
        from ..results import document as results
        runs = self.outcomes[cell.id]
        runs.append(outcome)
        if len(runs) == self.repeat:
            agg = results.aggregate(cell.id, runs)
            self.finished.append(agg)
            self.progress.cell_finished(agg)

    def cells(self) -> list[dict]:
        return sorted(self.finished, key=lambda c: self.order[c["id"]])


def run_native_cells(selected, run_one, repeat: int, jobs: int, sink: Collector):
    """Runs every (cell, repeat) pair through run_one(cell), `jobs` at a time."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from ..runners import native
    queue = iter([(c, i) for i in range(repeat) for c in selected])
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running = {}
        try:
            for c, _ in queue:
                running[pool.submit(run_one, c)] = c
                if len(running) >= jobs:
                    break
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    sink.add(running.pop(fut), fut.result())
                    nxt = next(queue, None)
                    if nxt is not None:
                        running[pool.submit(run_one, nxt[0])] = nxt[0]
        except BaseException:
            # Interrupted: each runner kills its probe's tree and ends at once;
            # the pool then has nothing left to wait for.
            for fut in running:
                fut.cancel()
            native.terminate_runners()
            raise


def cmd_run(args) -> int:
    # Imported here, not at the top: `sigprobe doctor` builds this parser too and starts fast.
    from .. import catalog as cellmod, trace as tracemod
    from ..runners import native, python as pyhosts, wine
    from ..runners.native import run_native
    from .list import catalog, prepare, runner_version
    settings = RunSettings.from_args(args)
    if args.platform == "windows-wine":
        if args.python or args.fresh_kernels:
            raise BadInput("--python and --fresh-kernels go with the native platform's Python and Jupyter cells")
        if args.trace:
            raise BadInput("--trace goes with the native platform (Wine's pids are not the probe's)")
        build = wine.ensure_build()
        with wine.wineserver(build) as env:
            selected = cellmod.select(wine.catalog(build, env), args.only)
            version = wine.version(build, env)

            def kernel_cells(runs, sink):
                return wine.run_kernel_cells(build, env, runs, settings.window_scale, sink.add)

            return execute(settings, selected, version["platform"] if "platform" in version else "windows-wine",
                           version, lambda c: wine.run_cell(build, env, c, settings.window_scale), kernel_cells)
    native.check_window_scale(settings.window_scale)
    build_dir = prepare(args.build_dir)
    runner = build_dir / paths.RUNNER
    selected = cellmod.select(catalog(build_dir), args.only)
    version = runner_version(runner)
    python = [c for c in selected if c.kind != "native"]
    interp = pyhosts.interpreter(args.python, build_dir) if python or args.python else None
    window_ms, calibration = (native.calibrate_window_ms(build_dir / "sigprobe-baseline")
                              if any(c.kind == "native" for c in selected) else (None, {}))
    run_one = lambda c: run_native(runner, c, settings.window_scale, window_ms)  # noqa: E731

    # --trace (trace.py): one private trace instance for the whole run.
    with tracemod.RunTracer() if args.trace else contextlib.nullcontext() as tracer:
        if tracer:
            run_one = tracer.wrap_run_one(run_one)

        def run_python(runs, sink):
            add = tracer.wrap_add(sink.add) if tracer else sink.add
            return pyhosts.run_all(runner, interp, build_dir, runs, settings.window_scale, settings.jobs, add,
                                   fresh_kernels=settings.fresh_kernels)

        # Whatever escapes a runner that died outright is re-parented here and
        # ended once the runs are over (see native.reap_orphans).
        native.become_subreaper()
        try:
            return execute(settings, selected, version.get("platform", "unknown"), version,
                           run_one, run_python if python else None, dict(interp.facts) if interp else {},
                           calibration=calibration)
        finally:
            native.reap_orphans()


def check_writable(out: Path) -> None:
    """Refuses an --out that cannot be written before running any cell, not after."""
    if out.suffix != ".json":
        raise BadInput(f"--out {out}: the results document must end in .json")
    for target in (out, out.with_suffix(".md")):
        if target.is_dir():
            raise BadInput(f"--out {out}: {target} is a directory")
    # Trying is the only answer that holds everywhere (root, read-only mounts, /proc).
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise BadInput(f"--out {out}: cannot write there: {e.strerror}") from None


def execute(settings: RunSettings, selected, platform: str, version: dict, run_one, run_python,
            extra: dict | None = None, calibration: dict | None = None) -> int:
    """Runs the selected cells (native ones through run_one, the Python and
    Jupyter ones through run_python), prints the matrix, writes the document;
    on SIGINT/SIGTERM it writes what finished, marked partial."""
    from ..export import matrix as render
    from ..results import document as results
    out = settings.out or paths.results_dir() / f"{platform}.json"
    check_writable(out)
    native_cells = [c for c in selected if c.kind == "native"]
    python = [c for c in selected if c.kind != "native"]
    sink = Collector(selected, settings.repeat, Progress(len(selected), settings.quiet))
    t0 = time.monotonic()
    print(f"sigprobe: {len(selected)} cells × {settings.repeat} runs, {settings.jobs} at a time", file=sys.stderr)
    interrupted: options.Interrupted | None = None
    extra = dict(extra or {})
    try:
        run_native_cells(native_cells, run_one, settings.repeat, settings.jobs, sink)
        if python:
            runs = [(c, i) for i in range(settings.repeat) for c in python]
            extra.update(run_python(runs, sink))
    except options.Interrupted as e:
        interrupted = e
    wall = time.monotonic() - t0

    cells = sink.cells()
    recorded = {"repeat": settings.repeat, "jobs": settings.jobs, "window_scale": settings.window_scale,
                "only": list(settings.only), "fresh_kernels": settings.fresh_kernels, "wall_s": round(wall, 3),
                **(calibration or {})}
    if hasattr(run_one, "trace_settings"):  # --trace (trace.py)
        recorded.update(run_one.trace_settings())
    machine = results.machine_info(version, {k: v for k, v in extra.items() if k not in ("missing", "platform")})
    doc = results.document(platform, machine, recorded, cells, partial=bool(interrupted))
    results.write_atomically(out, results.dumps(doc))
    results.write_atomically(out.with_suffix(".md"), render.markdown(doc))
    print(render.text_matrix(cells))
    print(f"sigprobe: {len(cells)} cells in {wall:.2f} s; wrote {paths.rel(out)} and "
          f"{paths.rel(out.with_suffix('.md'))}", file=sys.stderr)
    if interrupted:
        print(f"sigprobe: interrupted by {interrupted}; the document is marked partial", file=sys.stderr)
        return 128 + interrupted.signo
    return 0
