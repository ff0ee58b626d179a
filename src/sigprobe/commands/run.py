"""`sigprobe run`: runs the selected cells N times each, prints the matrix and
writes the results document; on SIGINT/SIGTERM it writes what finished,
marked partial."""
from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple, Optional

from .. import paths
from ..errors import BadInput
from . import options

DEFAULT_REPEAT = 3
# A cell whose runs disagree gets more runs, up to this many, so that its
# proportions are known (the kernel picks the thread a SIGINT lands on).
FLAKY_RUNS = 20


def add_parsers(sub) -> None:
    run = sub.add_parser("run",
                         description="Runs the selected cells N times each, prints the matrix and writes "
                                     "<results>/<platform>.json and .md (or --out): results/ in a clone of the "
                                     "repository, ./sigprobe-results/ where sigprobe is installed.")
    options.add_platform(run, "this machine's cells, native, Python and Jupyter", default=None)
    options.add_only(run, ", e.g. 'linux/no-tty/*'")
    run.add_argument("--repeat", type=options.bounded_int(1000), metavar="N",
                     help=f"runs per cell (default {DEFAULT_REPEAT}); runs that disagree make the cell flaky")
    run.add_argument("-j", "--jobs", type=options.bounded_int(256), default=os.cpu_count() or 1, metavar="N",
                     help=f"cells run in parallel (default: the number of cores, {os.cpu_count()})")
    run.add_argument("--out", type=Path, metavar="FILE",
                     help=f"results document to write (default {paths.rel(paths.results_dir())}/<platform>.json; "
                          "the Markdown matrix goes beside it with .md). It is rewritten as runs finish (at most 1 s "
                          "apart), so an interrupted run leaves every finished run on disk")
    run.add_argument("--resume", type=Path, metavar="FILE",
                     help="finish the partial document FILE: only its missing runs, with its selection and "
                          "settings (refused if this machine's interpreter, Jupyter or settings differ); "
                          "writes FILE unless --out")
    run.add_argument("--window-scale", type=options.positive_float, metavar="K",
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
    """What a run was asked for, settled (checkpoint.apply_resume: the defaults,
    or the resumed document's): what execute() and the results' `settings`
    read (the argparse namespace stops at cmd_run)."""
    repeat: int
    jobs: int
    window_scale: float
    only: tuple
    fresh_kernels: bool
    quiet: bool
    out: Optional[Path]
    resume: Optional[Path]
    resume_doc: dict

    @classmethod
    def from_args(cls, args) -> RunSettings:
        return cls(args.repeat, args.jobs, args.window_scale, tuple(args.only or ()), args.fresh_kernels,
                   args.quiet, args.out, args.resume, args.resume_doc)


class Progress:
    def __init__(self, total: int, quiet: bool):
        self.total, self.done, self.quiet = total, 0, quiet
        self.reported: set[str] = set()
        self.t0 = time.monotonic()

    def cell_finished(self, cell: dict) -> None:
        """A cell with all its runs; again, with its extra runs, when it was flaky."""
        from ..export import matrix as render
        again = cell["id"] in self.reported
        self.reported.add(cell["id"])
        self.done += not again
        if self.quiet:
            return
        head = f"{len(cell['runs'])} runs" if again else f"{self.done:>{len(str(self.total))}}/{self.total}"
        print(f"[{head}] {cell['id']:<44} {render.cell_text(cell)}", file=sys.stderr, flush=True)


def run_native_cells(runs: list, run_one, jobs: int, sink) -> None:
    """Runs every (cell, repeat) pair through run_one(cell), `jobs` at a time,
    into sink (a results.checkpoint.Checkpoint)."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from ..runners import native
    queue = iter(runs)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running = {}

        def submit(c):
            with options.interrupts_deferred():  # the pool's own locks
                running[pool.submit(run_one, c)] = c
        try:
            for c, _ in queue:
                submit(c)
                if len(running) >= jobs:
                    break
            while running:
                # A stop signal is raised between waits, never inside one (options.interrupts_deferred).
                with options.interrupts_deferred():
                    done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
                    got = [(fut, fut.result()) for fut in done]
                for fut, outcome in got:
                    sink.add(running.pop(fut), outcome)
                    nxt = next(queue, None)
                    if nxt is not None:
                        submit(nxt[0])
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
    from ..results import checkpoint
    from .list import catalog, prepare, runner_version
    prior = checkpoint.apply_resume(args, DEFAULT_REPEAT)
    if prior is None:
        return 0
    settings = RunSettings.from_args(args)
    if args.platform == "windows-wine":
        if args.python or args.fresh_kernels:
            raise BadInput("--python and --fresh-kernels go with the native platform's Python and Jupyter cells")
        if args.trace:
            raise BadInput("--trace goes with the native platform (Wine's pids are not the probe's)")
        build = wine.ensure_build()
        # The native cells' jobs each use one of up to a core's worth of
        # wineservers (one server serialises every process start of its
        # prefix: the 125 native cells took 18 s at -j 2 through one, 15 s
        # through two); the kernels run under the first, beside them.
        with wine.wineservers(build, min(settings.jobs, os.cpu_count() or 1)) as envs:
            env = envs[0]
            selected = cellmod.select(wine.catalog(build, env), args.only)
            version = wine.version(build, env)
            turns, mine = itertools.count(), threading.local()

            def run_cell(c):
                if not hasattr(mine, "env"):
                    mine.env = envs[next(turns) % len(envs)]
                return wine.run_cell(build, mine.env, c, settings.window_scale)

            def kernel_cells(runs, sink, more=None):
                # A kernel lane per interrupt mode under Wine: its flaky cells' extra runs come in a round of
                # their own.
                return wine.run_kernel_cells(build, env, runs, settings.window_scale, sink.add)

            return execute(settings, selected, version["platform"] if "platform" in version else "windows-wine",
                           version, run_cell, kernel_cells, prior=prior, beside=len(envs) > 1)
    native.check_window_scale(settings.window_scale)
    build_dir = prepare(args.build_dir)
    runner = build_dir / paths.RUNNER
    selected = cellmod.select(catalog(build_dir), args.only)
    version = runner_version(runner)
    python = [c for c in selected if c.kind != "native"]
    interp = pyhosts.interpreter(args.python, build_dir) if python or args.python else None
    if settings.resume and "window_ms" in settings.resume_doc.get("settings", {}):
        # The window the document's runs had, so that the runs pooled into a cell are alike.
        old = settings.resume_doc["settings"]
        window_ms, calibration = old["window_ms"], {k: old[k] for k in ("window_ms", "calibration") if k in old}
    else:
        window_ms, calibration = (native.calibrate_window_ms(build_dir / "sigprobe-baseline")
                                  if any(c.kind == "native" for c in selected) else (None, {}))
    run_one = lambda c: run_native(runner, c, settings.window_scale, window_ms)  # noqa: E731

    # --trace (trace.py): one private trace instance for the whole run.
    with tracemod.RunTracer() if args.trace else contextlib.nullcontext() as tracer:
        if tracer:
            run_one = tracer.wrap_run_one(run_one)

        def run_python(runs, sink, more=None):
            from ..check import matrix as subjects
            add = tracer.wrap_add(sink.add) if tracer else sink.add
            versions = pyhosts.run_all(runner, interp, build_dir, [r for r in runs if r[0].kind != "subject"],
                                       settings.window_scale, settings.jobs, add, fresh_kernels=settings.fresh_kernels,
                                       more=more)
            subject_runs = [r for r in runs if r[0].kind == "subject"]
            if subject_runs:  # the interpreter's versions are those above (interp.facts)
                no_jupyter = None if interp.has_jupyter else pyhosts.jupyter_missing_reason(interp)
                subjects.run_subjects(interp.python, no_jupyter, subject_runs, settings.jobs, add)
            return versions

        # Whatever escapes a runner that died outright is re-parented here and
        # ended once the runs are over (see native.reap_orphans).
        native.become_subreaper()
        try:
            return execute(settings, selected, version.get("platform", "unknown"), version,
                           run_one, run_python if python else None, dict(interp.facts) if interp else {},
                           calibration=calibration, prior=prior)
        finally:
            native.reap_orphans()


def check_writable(out: Path) -> None:
    """Refuses an --out that cannot be written before running any cell, not after."""
    import tempfile

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
            extra: dict | None = None, calibration: dict | None = None, prior: dict | None = None,
            beside: bool = False) -> int:
    """Runs the selected cells (native ones through run_one, the Python and
    Jupyter ones through run_python), prints the matrix, writes the document:
    a checkpoint while it runs (results/checkpoint.py), every finished run kept
    on SIGINT/SIGTERM/SIGHUP too, marked partial. beside: run_python's runs go
    on in a thread beside the native ones instead of after them (under Wine,
    where the kernels wait on a wineserver the native runs do not use); an
    interrupt leaves that thread to the caller's clean-up (the wineservers'
    end), its late runs not counted (the sink is sealed)."""
    from .. import runlog, scratch
    from ..export import matrix as render
    from ..results import checkpoint, document as results
    from ..runners import python as pyhosts
    out = settings.out or paths.results_dir() / f"{platform}.json"
    check_writable(out)
    known_flaky = flaky_in(out, platform) if settings.repeat < FLAKY_RUNS else set()
    for path in scratch.reap_stale():
        print(f"sigprobe: removed {path}, left by a sigprobe run that was killed", file=sys.stderr)
    extra = dict(extra or {})
    t0 = time.monotonic()
    base_wall = float((settings.resume_doc.get("settings") or {}).get("wall_s", 0)) if settings.resume else 0.0
    recorded = {"repeat": settings.repeat, "jobs": settings.jobs, "window_scale": settings.window_scale,
                "only": list(settings.only), "fresh_kernels": settings.fresh_kernels, **(calibration or {})}
    if settings.repeat < FLAKY_RUNS:
        recorded["flaky_runs"] = FLAKY_RUNS

    def header():
        s = dict(recorded, wall_s=round(base_wall + time.monotonic() - t0, 3))
        if hasattr(run_one, "trace_settings"):  # --trace (trace.py)
            s.update(run_one.trace_settings())
        kernels = extra.get("kernels")
        if kernels:
            s["kernels"] = kernels
        machine = results.machine_info(version, {k: v for k, v in extra.items()
                                                 if k not in ("missing", "platform", "kernels")})
        return platform, machine, s

    if settings.resume:
        conflict = checkpoint.resume_conflict(settings.resume_doc, *header())
        if conflict:
            raise BadInput(f"--resume {settings.resume}: cannot continue it here: {conflict}")
    sink = checkpoint.Checkpoint(out, selected, settings.repeat, Progress(len(selected), settings.quiet), header,
                                 prior)
    expected = sink.expect_flaky(known_flaky, FLAKY_RUNS)
    todo = sink.todo()
    print(f"sigprobe: {len(selected)} cells × {settings.repeat} runs"
          + (f" ({len(expected)} flaky in {paths.rel(out)}: {FLAKY_RUNS} runs each)" if expected else "")
          + f", {settings.jobs} at a time"
          + (f"; resuming {paths.rel(settings.resume)}: {len(todo)} runs to go" if settings.resume else ""),
          file=sys.stderr)
    interrupted: options.Interrupted | None = None

    def more_for_flaky(among=None, early=False) -> list:
        """The extra runs of the flaky cells (among these ids), said on stderr.
        early: a group's whose first runs are in while the others' go on."""
        if settings.repeat >= FLAKY_RUNS:
            return []
        more = sink.more_for_flaky(FLAKY_RUNS, among)
        if more:
            ids = {c.id for c, _ in more}
            print(f"sigprobe: {len(ids)} {'Jupyter ' if early else ''}cells' runs disagree"
                  + f": up to {FLAKY_RUNS} runs each, {len(more)} more runs"
                  + (", beside the other cells' first runs" if early else ""), file=sys.stderr)
        return more

    def run(todo, more=None):
        """One round of runs. more: run_python may take its kernel cells'
        extra runs from it (more_for_flaky) as soon as their first runs are
        in, beside the python-* runs, rather than in a round after them."""
        native_runs = [(c, i) for c, i in todo if c.kind == "native"]
        python_runs = [(c, i) for c, i in todo if c.kind != "native"]
        got: dict = {}

        def python_side():
            try:
                got["facts"] = run_python(python_runs, sink, more)
            except BaseException as e:  # re-raised in the main thread below
                got["error"] = e

        side = threading.Thread(target=python_side, name="python-runs", daemon=True)
        if beside and python_runs and native_runs:
            side.start()
        run_native_cells(native_runs, run_one, settings.jobs, sink)
        if not python_runs:
            return
        if side.ident is None:  # not started: after the native runs, here
            got["facts"] = run_python(python_runs, sink, more)
        while side.is_alive():  # a stop signal is raised between joins
            side.join(0.2)
        if "error" in got:
            raise got["error"]
        pyhosts.merge_facts(extra, got["facts"])

    with runlog.to(out.with_suffix(".log")) as logged, sink:
        try:
            run(todo, lambda among: more_for_flaky(among, early=True))
            more = more_for_flaky()
            if more:
                run(more)
        except options.Interrupted as e:
            sink.seal()
            interrupted = e
    wall = time.monotonic() - t0
    doc = sink.write(partial=bool(interrupted) or not sink.complete())
    cells = doc["cells"]
    results.write_atomically(out.with_suffix(".md"), render.markdown(doc))
    print(render.text_matrix(cells))
    print(f"sigprobe: {len(cells)} cells in {wall:.2f} s; wrote {paths.rel(out)} and "
          f"{paths.rel(out.with_suffix('.md'))} ({sink.writes} checkpoints, {sink.write_s:.2f} s)", file=sys.stderr)
    kernels = extra.get("kernels")
    if kernels:
        print("sigprobe: kernels: " + ", ".join(f"{n} {k}" for k, n in kernels.items()), file=sys.stderr)
    if logged():
        print(f"sigprobe: what kernels and interpreters printed ({logged()} lines): "
              f"{paths.rel(out.with_suffix('.log'))}", file=sys.stderr)
    root = paths.source_root()
    if root and out.parent.resolve() == (root / "results").resolve():
        regenerate_reference(out.parent)
    if interrupted:
        print(f"sigprobe: interrupted by {interrupted}; the document is marked partial "
              f"(`sigprobe run --resume {paths.rel(out)}` finishes it)", file=sys.stderr)
        return 128 + interrupted.signo
    return 0


def flaky_in(out: Path, platform: str) -> set[str]:
    """The cells flaky in the document this run replaces (out, when it is one
    of this platform's): they get FLAKY_RUNS runs from the start, whatever
    their first runs say (Checkpoint.expect_flaky). A file there that is not
    a readable document is said and ignored."""
    from ..results import document as results
    if not out.is_file():
        return set()
    try:
        doc = results.load(out)
    except BadInput as e:
        print(f"sigprobe: {e}; no cell is known flaky from it", file=sys.stderr)
        return set()
    if doc.get("platform") != platform:
        return set()
    return {c["id"] for c in doc["cells"] if c["verdict"] == results.FLAKY}


def regenerate_reference(results_dir: Path) -> None:
    """A run that writes into the checkout's results/ leaves it consistent: the
    reference is regenerated from the documents there, the new one included."""
    from ..export import report
    from ..results import document as results
    try:
        sources = report.load_sources(sorted(results_dir.glob("*.json")))
        results.write_atomically(results_dir / "README.md", report.markdown(sources, results_dir))
        results.write_atomically(results_dir / "reference.html", report.html_page(sources))
    except BadInput as e:
        print(f"sigprobe: the reference in {paths.rel(results_dir)}/ was not regenerated: {e}", file=sys.stderr)
        return
    print(f"sigprobe: regenerated {paths.rel(results_dir / 'README.md')} and "
          f"{paths.rel(results_dir / 'reference.html')}", file=sys.stderr)
