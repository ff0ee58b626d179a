"""The `sigprobe` command: list, run, test. Fatal errors become exit codes here
and only here: 2 bad input or a missing dependency, 3 a failed build,
130/143 interrupted by SIGINT/SIGTERM."""
from __future__ import annotations

import argparse
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

from . import bootstrap, cells as cellmod, render, results
from .errors import BadInput, SigprobeError
from . import pyhosts, wine
from . import native
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

    b = sub.add_parser("bench", help="measure latency against a C baseline, cell overhead and matrix wall time",
                       description="Prints figures (never asserts them): kill → handler latency of sigprobe's "
                                   "no-tty/sigaction/kill cell beside a minimal C baseline, the native cell "
                                   "overhead, latency per delivery path, and the native matrix's wall time at "
                                   "-j 1 and -j N with a verdict check against 10× longer windows.")
    b.add_argument("--samples", type=bounded_int(100_000), default=200, metavar="N", help="samples per latency figure (default 200)")
    b.add_argument("--json", action="store_true", help="print the figures as JSON")
    b.add_argument("--build-dir", type=build_dir_arg, default=bootstrap.DEFAULT_BUILD, help="C build directory (default: build/)")

    t = sub.add_parser("test", help="set up everything and run the whole test suite (CTest: Criterion + pytest + "
                                    "fuzzing), then the C tests again under ASan + UBSan (build-asan/)")
    t.add_argument("--no-sanitizers", action="store_true", help="skip the second, sanitized run of the C tests")
    t.add_argument("ctest_args", nargs=argparse.REMAINDER, help="extra arguments for ctest, e.g. -R c.cells")
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
    Python and Jupyter cells (POSIX platforms)."""
    native = cellmod.native_cells(runner)
    platform = native[0].platform if native else "unknown"
    return native + (pyhosts.python_cells(platform) if platform in ("linux", "macos") else [])


def cmd_list(args) -> int:
    if args.platform == "windows-wine":
        build = wine.ensure_build()
        with wine.wineserver(build) as env:
            cells = wine.cells(build, env)
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
        build = wine.ensure_build()
        with wine.wineserver(build) as env:
            selected = cellmod.select(wine.cells(build, env), args.only)
            version = wine.version(build, env)
            return execute(args, selected, version["platform"] if "platform" in version else "windows-wine",
                           version, lambda c: wine.run_cell(build, env, c, args.window_scale), None)
    native.check_window_scale(args.window_scale)
    runner = prepare(args.build_dir)
    selected = cellmod.select(catalog(runner), args.only)
    version = runner_version(runner)
    python = [c for c in selected if c.kind != "native"]
    interp = pyhosts.interpreter(args.python, args.build_dir) if python or args.python else None

    def run_python(runs, sink):
        return pyhosts.run_all(runner, interp, args.build_dir, runs, args.window_scale, args.jobs, sink.add,
                               fresh_kernels=args.fresh_kernels)

    # Whatever escapes a runner that died outright is re-parented here and
    # ended once the runs are over (see native.reap_orphans).
    native.become_subreaper()
    try:
        return execute(args, selected, version.get("platform", "unknown"), version,
                       lambda c: run_native(runner, c, args.window_scale), run_python if python else None,
                       dict(interp.facts) if interp else {})
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


def execute(args, selected, platform: str, version: dict, run_one, run_python, extra: dict | None = None) -> int:
    """Runs the selected cells (native ones through run_one, the Python and
    Jupyter ones through run_python), prints the matrix, writes the document;
    on SIGINT/SIGTERM it writes what finished, marked partial."""
    out = args.out or bootstrap.ROOT / "results" / f"{platform}.json"
    check_writable(out)
    native = [c for c in selected if c.kind == "native"]
    python = [c for c in selected if c.kind != "native"]
    sink = Collector(selected, args.repeat, Progress(len(selected), args.quiet))
    t0 = time.monotonic()
    print(f"sigprobe: {len(selected)} cells × {args.repeat} runs, {args.jobs} at a time", file=sys.stderr)
    interrupted: Interrupted | None = None
    extra = dict(extra or {})
    try:
        run_native_cells(native, run_one, args.repeat, args.jobs, sink)
        if python:
            runs = [(c, i) for i in range(args.repeat) for c in python]
            extra.update(run_python(runs, sink))
    except Interrupted as e:
        interrupted = e
    wall = time.monotonic() - t0

    cells = sink.cells()
    settings = {"repeat": args.repeat, "jobs": args.jobs, "window_scale": args.window_scale,
                "only": args.only or [], "fresh_kernels": args.fresh_kernels, "wall_s": round(wall, 3)}
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


def cmd_test(args) -> int:
    """The whole suite in build/, then the C tests once more in build-asan/,
    built with AddressSanitizer and UndefinedBehaviorSanitizer."""
    bootstrap.ensure_system_packages(["build", "test"])
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
        # Everything below runs inside the project's virtual environment.
        bootstrap.reexec_in_venv(argv)
        signal.signal(signal.SIGINT, _raise_interrupted)
        signal.signal(signal.SIGTERM, _raise_interrupted)
        return {"list": cmd_list, "run": cmd_run, "bench": cmd_bench, "test": cmd_test}[args.command](args)
    except SigprobeError as e:
        print(f"sigprobe: {e}", file=sys.stderr)
        return e.exit_code
    except Interrupted as e:
        print(f"sigprobe: interrupted by {e}", file=sys.stderr)
        return 128 + e.signo
    except KeyboardInterrupt:
        return 130
