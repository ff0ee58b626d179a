"""The `sigprobe` command: list, run, bench, test, report, compare, doctor,
trace. Fatal errors become exit codes here and only here: 2 bad input or a
missing dependency, 3 a failed build, 130/143 interrupted by SIGINT/SIGTERM."""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from . import bootstrap, cells as cellmod, native, pyhosts, render, results, wine
from . import trace as tracemod
from .errors import BadInput, SigprobeError
from .native import run_native

DEFAULT_REPEAT = 3
SCRIPT_PATH = bootstrap.ROOT / "scripts" / "sigprobe"


class Interrupted(Exception):
    def __init__(self, signo: int):
        super().__init__(signal.Signals(signo).name)
        self.signo = signo


class ArgumentParser(argparse.ArgumentParser):
    """Bad flags are BadInput (one line, exit 2), like every other bad input."""

    def error(self, message: str):
        raise BadInput(f"{message} (see `sigprobe {self.prog.split()[-1]} --help`)"
                       if " " in self.prog else f"{message} (see `sigprobe --help`)")


def bounded_int(limit: int):
    """A whole number from 1 to limit (a typo like 1000000 fails at once
    instead of running for days)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
        if v > limit:
            raise argparse.ArgumentTypeError(f"must be at most {limit}: {text}")
        return v

    return parse


# Process ids: anything a pid_t holds; whether it exists is checked where it is used.
pid_arg = bounded_int(2**31 - 1)


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number: {text}")
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    if v > 1000:
        raise argparse.ArgumentTypeError(f"must be at most 1000: {text}")
    return v


def build_dir_arg(text: str) -> Path:
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise argparse.ArgumentTypeError(f"not a directory: {text}")
    return p


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="sigprobe", description=(
        "Which interrupt handler fires, under which host, and how fast: runs probe cells "
        "(platform/host/strategy/delivery) and writes a results document."))
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True

    ls = sub.add_parser("list", help="print every cell id for this platform, one a line")
    ls.add_argument("--only", action="append", metavar="GLOB", help="only cells matching GLOB (repeatable)")
    ls.add_argument("--platform", choices=["native", "windows-wine"], default="native",
                    help="native: this machine's cells (default); windows-wine: the Windows cells under Wine")
    ls.add_argument("--build-dir", type=build_dir_arg, default=bootstrap.DEFAULT_BUILD, help="C build directory (default: build/)")

    run = sub.add_parser("run", help="run cells, print the matrix, write the results document",
                         description="Runs the selected cells N times each, prints the matrix and writes "
                                     "results/<platform>.json and .md (or --out).")
    run.add_argument("--platform", choices=["native", "windows-wine"], default="native",
                     help="native: this machine's cells, native, Python and Jupyter (default); windows-wine: "
                          "the Windows cells cross-built with MinGW-w64 and run under Wine (results/windows-wine.json)")
    run.add_argument("--only", action="append", metavar="GLOB",
                     help="only cells matching GLOB, e.g. 'linux/no-tty/*' (repeatable; default: all)")
    run.add_argument("--repeat", type=bounded_int(1000), default=DEFAULT_REPEAT, metavar="N",
                     help=f"runs per cell (default {DEFAULT_REPEAT}); runs that disagree make the cell flaky")
    run.add_argument("-j", "--jobs", type=bounded_int(256), default=os.cpu_count() or 1, metavar="N",
                     help=f"cells run in parallel (default: the number of cores, {os.cpu_count()})")
    run.add_argument("--out", type=Path, metavar="FILE",
                     help="results document to write (default results/<platform>.json; the Markdown "
                          "matrix goes beside it with .md)")
    run.add_argument("--window-scale", type=positive_float, default=1.0, metavar="K",
                     help="multiply every waiting window by K (default 1; 10 checks that verdicts do "
                          "not depend on the windows)")
    run.add_argument("--python", metavar="PATH",
                     help="interpreter for the Python and Jupyter cells, with its own ipykernel and "
                          "jupyter_client (default: the project's .venv); the extension probe is built for it")
    run.add_argument("--fresh-kernels", action="store_true",
                     help="start a fresh kernel for every Jupyter run (slower; checks that reusing kernels "
                          "changes no verdict)")
    run.add_argument("--build-dir", type=build_dir_arg, default=bootstrap.DEFAULT_BUILD, help="C build directory (default: build/)")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    # ---- --trace (trace.py) ----
    run.add_argument("--trace", action="store_true",
                     help="record the kernel's side of every native run (signal:signal_generate and "
                          "signal_deliver through tracefs, in a private trace instance; Linux, root): each "
                          "outcome gains `trace` and `kernel`; where tracing is impossible, the reason")

    b = sub.add_parser("bench", help="measure latency against a C baseline, cell overhead and matrix wall time",
                       description="Prints figures (never asserts them): kill → handler latency of sigprobe's "
                                   "no-tty/sigaction/kill cell beside a minimal C baseline, the native cell "
                                   "overhead, latency per delivery path, and the native matrix's wall time at "
                                   "-j 1 and -j N with a verdict check against 10× longer windows.")
    b.add_argument("--samples", type=bounded_int(100_000), default=200, metavar="N", help="samples per latency figure (default 200)")
    b.add_argument("--json", action="store_true", help="print the figures as JSON")
    b.add_argument("--build-dir", type=build_dir_arg, default=bootstrap.DEFAULT_BUILD, help="C build directory (default: build/)")

    # ---- `sigprobe trace` (trace.py) ----
    tr = sub.add_parser("trace", help="watch the signals sent to one process and what the kernel did with them",
                        description="Prints, live, every signal sent to PID, its threads and children: who sent "
                                    "what, and what the kernel did with it (delivered, ignored, already pending; "
                                    "a handler, the default action or nothing ran); then a summary. Linux, root.")
    tr.add_argument("--pid", type=pid_arg, required=True, metavar="PID", help="the process to watch")
    tr.add_argument("--seconds", type=positive_float, default=10.0, metavar="N",
                    help="how long to watch (default 10); the watch also ends when PID exits")

    t = sub.add_parser("test", help="set up everything and run the whole test suite (CTest: Criterion + pytest + "
                                    "fuzzing + the Wine leg), then the C tests again under ASan + UBSan (build-asan/)")
    t.add_argument("--no-sanitizers", action="store_true", help="skip the second, sanitized run of the C tests")
    t.add_argument("ctest_args", nargs=argparse.REMAINDER, help="extra arguments for ctest, e.g. -R c.cells")
    add_report_parsers(sub)
    add_doctor_parser(sub)
    return p


# ---- commands -------------------------------------------------------------

def prepare(build_dir: Path) -> Path:
    native.base_multiplier()  # a bad SIGPROBE_TIMEOUT_MULTIPLIER is bad input, before any build
    bootstrap.ensure_system_packages(["build"])
    bootstrap.ensure_build(build_dir)
    return build_dir / "sigprobe-run"


def runner_version(runner: Path) -> dict:
    r = subprocess.run([str(runner), "--version"], capture_output=True, text=True)
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        return {}


def catalog(runner: Path) -> list:
    """Every cell for this platform: the runner's native cells, then the
    Python and Jupyter cells (POSIX platforms; kernels only on Windows)."""
    native = cellmod.native_cells(runner)
    platform = native[0].platform if native else "unknown"
    return native + (pyhosts.python_cells(platform) if platform in ("linux", "macos", "windows") else [])


def cmd_list(args) -> int:
    if args.platform == "windows-wine":
        build = wine.ensure_build()
        with wine.wineserver(build) as env:
            cells = wine.catalog(build, env)
    else:
        cells = catalog(prepare(args.build_dir))
    for c in cellmod.select(cells, args.only):
        print(c.id)
    return 0


class Progress:
    def __init__(self, total: int, quiet: bool):
        self.total, self.done, self.quiet = total, 0, quiet
        self.t0 = time.monotonic()

    def cell_finished(self, cell: dict) -> None:
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
                return wine.run_kernel_cells(build, env, runs, args.window_scale, sink.add)

            return execute(args, selected, version["platform"] if "platform" in version else "windows-wine",
                           version, lambda c: wine.run_cell(build, env, c, args.window_scale), kernel_cells)
    native.check_window_scale(args.window_scale)
    runner = prepare(args.build_dir)
    selected = cellmod.select(catalog(runner), args.only)
    version = runner_version(runner)
    python = [c for c in selected if c.kind != "native"]
    interp = pyhosts.interpreter(args.python, args.build_dir) if python or args.python else None
    window_ms, calibration = (native.calibrate_window_ms(args.build_dir / "sigprobe-baseline")
                              if any(c.kind == "native" for c in selected) else (None, {}))
    run_one = lambda c: run_native(runner, c, args.window_scale, window_ms)  # noqa: E731

    # ---- --trace (trace.py): one private trace instance for the whole run ----
    with tracemod.RunTracer() if args.trace else contextlib.nullcontext() as tracer:
        if tracer:
            run_one = tracer.wrap_run_one(run_one)

        def run_python(runs, sink):
            add = tracer.wrap_add(sink.add) if tracer else sink.add
            return pyhosts.run_all(runner, interp, args.build_dir, runs, args.window_scale, args.jobs, add,
                                   fresh_kernels=args.fresh_kernels)

        # Whatever escapes a runner that died outright is re-parented here and
        # ended once the runs are over (see native.reap_orphans).
        native.become_subreaper()
        try:
            return execute(args, selected, version.get("platform", "unknown"), version,
                           run_one, run_python if python else None, dict(interp.facts) if interp else {},
                           settings=calibration)
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


def execute(args, selected, platform: str, version: dict, run_one, run_python, extra: dict | None = None,
            settings: dict | None = None) -> int:
    """Runs the selected cells (native ones through run_one, the Python and
    Jupyter ones through run_python), prints the matrix, writes the document;
    on SIGINT/SIGTERM it writes what finished, marked partial."""
    out = args.out or bootstrap.ROOT / "results" / f"{platform}.json"
    check_writable(out)
    native_cells = [c for c in selected if c.kind == "native"]
    python = [c for c in selected if c.kind != "native"]
    sink = Collector(selected, args.repeat, Progress(len(selected), args.quiet))
    t0 = time.monotonic()
    print(f"sigprobe: {len(selected)} cells × {args.repeat} runs, {args.jobs} at a time", file=sys.stderr)
    interrupted: Interrupted | None = None
    extra = dict(extra or {})
    try:
        run_native_cells(native_cells, run_one, args.repeat, args.jobs, sink)
        if python:
            runs = [(c, i) for i in range(args.repeat) for c in python]
            extra.update(run_python(runs, sink))
    except Interrupted as e:
        interrupted = e
    wall = time.monotonic() - t0

    cells = sink.cells()
    settings = {"repeat": args.repeat, "jobs": args.jobs, "window_scale": args.window_scale,
                "only": args.only or [], "fresh_kernels": args.fresh_kernels, "wall_s": round(wall, 3),
                **(settings or {})}
    if hasattr(run_one, "trace_settings"):  # --trace (trace.py)
        settings.update(run_one.trace_settings())
    machine = results.machine_info(version, {k: v for k, v in extra.items() if k not in ("missing", "platform")})
    doc = results.document(platform, machine, settings, cells, partial=bool(interrupted))
    results.write_atomically(out, results.dumps(doc))
    results.write_atomically(out.with_suffix(".md"), render.markdown(doc))
    print(render.text_matrix(cells))
    print(f"sigprobe: {len(cells)} cells in {wall:.2f} s; wrote {_rel(out)} and {_rel(out.with_suffix('.md'))}",
          file=sys.stderr)
    if interrupted:
        print(f"sigprobe: interrupted by {interrupted}; the document is marked partial", file=sys.stderr)
        return 128 + interrupted.signo
    return 0


def cmd_bench(args) -> int:
    from . import bench
    runner = prepare(args.build_dir)
    figures = bench.run_bench(runner, args.build_dir, args.samples)
    print(json.dumps(figures, indent=2) if args.json else bench.render(figures))
    return 0


def cmd_trace(args) -> int:
    """`sigprobe trace --pid PID`: trace.watch() (also for `doctor --watch`)."""
    tracemod.watch(args.pid, args.seconds)
    return 0


def cmd_test(args) -> int:
    """The whole suite in build/, then the C tests once more in build-asan/,
    built with AddressSanitizer and UndefinedBehaviorSanitizer."""
    bootstrap.ensure_system_packages(["build", "test", "browser"])
    bootstrap.ensure_build(bootstrap.DEFAULT_BUILD)
    extra = [a for a in args.ctest_args if a != "--"]
    jobs = str(os.cpu_count() or 2)
    cmd = ["ctest", "--test-dir", str(bootstrap.DEFAULT_BUILD), "--no-tests=error", "--output-on-failure",
           "-j", jobs, *extra]
    print("sigprobe: " + " ".join(cmd), file=sys.stderr, flush=True)
    rc = subprocess.run(cmd).returncode
    if args.no_sanitizers:
        return rc
    bootstrap.log(f"building the C side with ASan + UBSan in {_rel(bootstrap.ASAN_BUILD)}/")
    bootstrap.ensure_build(bootstrap.ASAN_BUILD, sanitize=True)
    # The C tests only: the fuzz targets already run under both sanitizers.
    cmd = ["ctest", "--test-dir", str(bootstrap.ASAN_BUILD), "--no-tests=error", "--output-on-failure",
           "-j", jobs, "-R", r"^c\.", *extra]
    print("sigprobe: " + " ".join(cmd), file=sys.stderr, flush=True)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    return rc or subprocess.run(cmd, env=env).returncode


# ---- report and compare ------------------------------------------------------
# Both read results documents only: standard library, no build.

def add_report_parsers(sub) -> None:
    r = sub.add_parser("report", help="merge results documents into the reference (Markdown and HTML)",
                       description="Merges results documents from several platforms into one reference: "
                                   "\"Choosing an interrupt strategy\", the machines, the matrices, latency per "
                                   "delivery path and every Wine deviation, as Markdown and as one self-contained "
                                   "HTML page. Without --md/--html it writes results/README.md and "
                                   "results/reference.html.")
    r.add_argument("documents", nargs="*", type=Path, metavar="RESULTS.json",
                   help="results documents (default: every results/*.json)")
    r.add_argument("--md", type=Path, metavar="FILE", help="write the Markdown here ('-': stdout)")
    r.add_argument("--html", type=Path, metavar="FILE", help="write the HTML page here ('-': stdout)")

    c = sub.add_parser("compare", help="the cells whose verdict differs between two results documents",
                       description="Lists the cells whose verdict differs (a flaky cell differs when it "
                                   "alternates between other verdicts) and those present in only one document. "
                                   "Exit 0: none differ; 1: some differ; 2: bad input.")
    c.add_argument("a", type=Path, metavar="A.json")
    c.add_argument("b", type=Path, metavar="B.json")
    c.add_argument("--ignore-platform", action="store_true",
                   help="match cells by host/strategy/delivery, ignoring the platform prefix "
                        "(e.g. linux vs windows-wine, or two names for one platform)")
    c.add_argument("--json", action="store_true", help="print the differences as JSON")


def cmd_report(args) -> int:
    from . import report
    docs = args.documents or sorted((bootstrap.ROOT / "results").glob("*.json"))
    if not docs:
        raise BadInput("no results documents given and none in results/ (run `sigprobe run` first)")
    outputs = {"md": args.md, "html": args.html}
    if not args.md and not args.html:
        outputs = {"md": bootstrap.ROOT / "results" / "README.md", "html": bootstrap.ROOT / "results" / "reference.html"}
    for kind, out in outputs.items():
        if out and str(out) != "-" and not out.parent.is_dir():
            raise BadInput(f"--{kind} {out}: the directory {out.parent} does not exist")
    sources = report.load_sources(docs)
    for kind, out in outputs.items():
        if not out:
            continue
        text = (report.markdown(sources, Path.cwd() if str(out) == "-" else out.parent) if kind == "md"
                else report.html_page(sources))
        if str(out) == "-":
            sys.stdout.write(text)
        else:
            results.write_atomically(out, text)
            print(f"sigprobe: wrote {_rel(out)}", file=sys.stderr)
    print(f"sigprobe: {len(sources)} documents, {sum(len(s.cells) for s in sources)} cells: "
          + ", ".join(s.label for s in sources), file=sys.stderr)
    return 0


def cmd_compare(args) -> int:
    from . import compare
    diff = compare.compare(args.a, args.b, args.ignore_platform)
    print(compare.dumps(diff) if args.json else compare.text(diff), end="" if args.json else "\n")
    return 1 if compare.has_differences(diff) else 0


REPORT_COMMANDS = {"report": cmd_report, "compare": cmd_compare}
# ---- end of report and compare ----------------------------------------------


# ---- doctor ------------------------------------------------------------------
# Kept in one block. The dispositions this process was started with are read
# here, at import, because main() installs sigprobe's own SIGINT/SIGTERM
# handlers before any command runs.
from . import doctor as doctor_mod  # noqa: E402

DOCTOR_INHERITED = doctor_mod.snapshot_inherited()


def add_doctor_parser(sub) -> None:
    d = sub.add_parser("doctor", help="what an interrupt would do to a live process, and why",
                       description="Reports per signal (INT, TERM, HUP, QUIT) whether it is default, ignored or "
                                   "caught, blocked or pending (per thread where threads differ); the process "
                                   "group, session, controlling terminal and foreground group; whether it is a "
                                   "Jupyter kernel and its interrupt_mode; then conclusions, each with the fact "
                                   "behind it. Default: this process, i.e. what a program started from this "
                                   "shell inherits.")
    d.add_argument("--pid", type=pid_arg, metavar="PID", help="the process to diagnose (default: this one)")
    d.add_argument("--json", action="store_true", help="print the facts and conclusions as JSON")
    d.add_argument("--watch", nargs="?", type=positive_float, const=10.0, metavar="SECONDS",
                   help="then trace, live, the signals sent to the process and what the kernel did with each "
                        "(Linux tracefs, root; default 10 s), with a summary")


def cmd_doctor(args) -> int:
    try:
        facts = doctor_mod.gather(args.pid, inherited=DOCTOR_INHERITED)
    except doctor_mod.NoSuchProcess as e:
        raise BadInput(str(e)) from None
    print(json.dumps(doctor_mod.report(facts), indent=2) if args.json else doctor_mod.render(facts))
    if args.watch is not None:
        if args.json:
            raise BadInput("--watch prints a live trace; it does not go with --json")
        sys.stdout.flush()
        tracemod.watch(args.pid or os.getpid(), args.watch)
    return 0
# ---- end doctor ----------------------------------------------------------------


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _raise_interrupted(signo, frame):
    raise Interrupted(signo)


def main(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
        # Everything below runs inside the project's virtual environment, but
        # doctor: it needs only the standard library and diagnoses what the
        # Python it was started with (a user's own, on Windows too) inherits.
        if args.command != "doctor":
            bootstrap.reexec_in_venv(argv)
        signal.signal(signal.SIGINT, _raise_interrupted)
        signal.signal(signal.SIGTERM, _raise_interrupted)
        return {"list": cmd_list, "run": cmd_run, "bench": cmd_bench, "test": cmd_test,
                "doctor": cmd_doctor, "trace": cmd_trace, **REPORT_COMMANDS}[args.command](args)
    except SigprobeError as e:
        print(f"sigprobe: {e}", file=sys.stderr)
        return e.exit_code
    except Interrupted as e:
        print(f"sigprobe: interrupted by {e}", file=sys.stderr)
        return 128 + e.signo
    except KeyboardInterrupt:
        return 130
