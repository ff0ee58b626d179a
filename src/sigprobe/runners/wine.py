"""The windows-wine platform: the Windows runner and probes cross-built with
MinGW-w64 into build-win/ and run under Wine, with one Wine prefix per build
tree and one persistent wineserver for the length of a run."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .. import bootstrap, paths
from ..catalog import Cell, parse_id, pyext_strategies
from ..errors import BuildFailed, MissingDependency
from . import python as pyhosts
from .native import RUNNER_SLACK_S, error_outcome, parse_outcome, scaled_env
from .winelaunch import command

PACKAGES = ["gcc-mingw-w64-x86-64", "wine", "wine64"]


def ensure_tools() -> None:
    missing = [t for t in ("x86_64-w64-mingw32-gcc", "wine", "wineserver") if not shutil.which(t)]
    if not missing:
        return
    bootstrap.apt_install(PACKAGES, f"the windows-wine cells need {', '.join(missing)}", "(about a minute, once)")


def env_for(build: Path, prefix: Path | None = None) -> dict:
    return dict(os.environ, WINEPREFIX=str(prefix or build / "wineprefix"), WINEDEBUG="-all")


def default_build() -> Path:
    """The checkout's build-win/: the Windows side is built only from a clone."""
    return bootstrap.checkout("--platform windows-wine (cross-building the Windows side)") / "build-win"


def ensure_build(build: Path | None = None) -> Path:
    """The Windows side cross-built with MinGW-w64 (default: default_build())."""
    build = build or default_build()
    root = bootstrap.checkout("--platform windows-wine (cross-building the Windows side)")
    ensure_tools()
    if not (build / "CMakeCache.txt").exists():
        r = subprocess.run(["cmake", "-S", str(root), "-B", str(build),
                            f"-DCMAKE_TOOLCHAIN_FILE={root / 'cmake' / 'toolchain-mingw64.cmake'}",
                            "-DSIGPROBE_TESTS=OFF", "-DSIGPROBE_WIN_TESTS=ON",
                            f"-DSIGPROBE_WERROR={'ON' if bootstrap.ci() else 'OFF'}"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildFailed(f"configuring the MinGW build failed:\n{(r.stdout + r.stderr)[-3000:]}")
    r = subprocess.run(["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2)], capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildFailed(f"the MinGW build failed:\n{(r.stdout + r.stderr)[-3000:]}")
    return build


def ensure_prefix(build: Path) -> None:
    """The build tree's Wine prefix (build/wineprefix), made if missing."""
    if not (build / "wineprefix" / "system.reg").exists():
        bootstrap.log(f"creating the Wine prefix {build / 'wineprefix'} (about a minute, once per build tree)")
        build.mkdir(parents=True, exist_ok=True)
        subprocess.run(command("wineboot", "-i"), env=env_for(build), stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def clone_prefix(build: Path, dest: Path) -> Path:
    """A prefix of its own made from the build tree's (ensure_prefix), and so
    a wineserver of its own: every Wine process of one prefix waits on its
    one server. drive_c/windows (690 MB of DLLs that Wine only reads) is
    hard-linked, the rest (the registry, the users' folders) copied."""
    src = build / "wineprefix"
    dlls = src / "drive_c" / "windows"

    def copy(a, b):
        return os.link(a, b) if Path(a).is_relative_to(dlls) else shutil.copy2(a, b)

    shutil.copytree(src, dest, symlinks=True, copy_function=copy)
    return dest


CLONE_LINGER_S = 30


def _persist(env: dict, prefix: Path | None) -> None:
    """Starts the prefix's wineserver, persistent; a clone's also ends
    CLONE_LINGER_S after its last process: one left by a killed run (its
    folder removed by the next) is not left running for good."""
    # The server keeps the stdio it starts with; at -k it may dump leftover objects there.
    persist = "-p" if prefix is None else f"-p{CLONE_LINGER_S}"
    subprocess.run(["wineserver", persist], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def _warm_up(build: Path, env: dict) -> None:
    """A server's first process, which starts Wine's background services
    (1.4 s here). They inherit the stdout of the first process of a server
    and keep it open: started with stdio on /dev/null."""
    subprocess.run(command(str(build / "sigprobe-run.exe"), "--list"), env=env, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(envs: list[dict]) -> None:
    """Stops these prefixes' servers (by prefix), all at once, and waits for them."""
    for flag in ("-k", "-w"):
        for p in [subprocess.Popen(["wineserver", flag], env=env, stderr=subprocess.DEVNULL) for env in envs]:
            p.wait()


@contextmanager
def wineserver(build: Path, prefix: Path | None = None):
    """One persistent wineserver for the prefix (default: the build tree's;
    else one made by clone_prefix), stopped (by prefix) on every path."""
    env = env_for(build, prefix)
    ensure_prefix(build)
    _persist(env, prefix)
    try:
        _warm_up(build, env)
        yield env
    finally:
        _stop([env])


@contextmanager
def cloned_wineserver(build: Path, dest: Path):
    """wineserver() on a prefix cloned into dest (clone_prefix); the clone is
    removed once its server has stopped."""
    try:
        with wineserver(build, clone_prefix(build, dest)) as env:
            yield env
    finally:
        shutil.rmtree(dest, ignore_errors=True)


@contextmanager
def wineservers(build: Path, n: int):
    """n wineservers, yielded as their envs: the build tree's first, then
    n - 1 on prefixes cloned from it (clone_prefix) in a scratch folder of
    this run. Every process start of a prefix goes through its one server:
    runs spread over several start side by side. The servers start, warm up
    and stop side by side too (2 servers: 2.3 s to start and 1.5 s to stop
    one after the other)."""
    from concurrent.futures import ThreadPoolExecutor

    from .. import scratch
    ensure_prefix(build)
    with ExitStack() as stack:
        prefixes: list[Path | None] = [None]
        if n > 1:
            tmp = scratch.make_dir("sigprobe-wine-")
            stack.callback(shutil.rmtree, tmp, True)  # after the servers below have stopped
            prefixes += [clone_prefix(build, tmp / f"prefix{k}") for k in range(1, n)]
        envs = [env_for(build, prefix) for prefix in prefixes]
        started: list[dict] = []
        stack.callback(_stop, started)
        for env, prefix in zip(envs, prefixes):
            _persist(env, prefix)
            started.append(env)
        with ThreadPoolExecutor(len(envs)) as pool:
            list(pool.map(lambda env: _warm_up(build, env), envs))
        yield envs


def _wine(build: Path, env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(command(str(build / "sigprobe-run.exe"), *args), env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=timeout)


def cells(build: Path, env: dict) -> list[Cell]:
    r = _wine(build, env, "--list")
    if r.returncode != 0:
        raise BuildFailed(f"sigprobe-run.exe --list failed under Wine: {r.stderr.strip()[-300:]}")
    return [parse_id(line.strip()) for line in r.stdout.splitlines() if line.strip()]


def catalog(build: Path, env: dict) -> list[Cell]:
    """The runner's Windows cells, then the Windows kernel cells (run by
    run_kernel_cells). The kernel cells' strategies are the extension probe's
    STRATEGIES as the one built for this interpreter lists them: one C table
    for both platforms (probes/pyext/strategies.c), and the Windows build
    cannot be imported here."""
    from ..check.matrix import subject_cells
    return (cells(build, env) + pyhosts.python_cells("windows-wine", pyext_strategies(paths.native_dir() / "pyext"), [])
            + subject_cells("windows-wine"))


def version(build: Path, env: dict) -> dict:
    r = _wine(build, env, "--version")
    try:
        v = json.loads(r.stdout.strip())
    except json.JSONDecodeError:
        v = {}
    w = subprocess.run(command("--version"), capture_output=True, text=True, env=env)
    v["wine"] = w.stdout.strip()
    return v


def run_cell(build: Path, env: dict, cell: Cell, window_scale: float = 1.0) -> dict:
    env = dict(env, **(scaled_env(window_scale) or {}))
    try:
        r = _wine(build, env, cell.id, timeout=RUNNER_SLACK_S * max(1.0, window_scale))
    except subprocess.TimeoutExpired:
        return error_outcome(cell, "sigprobe-run.exe did not finish under Wine (harness bug)")
    return parse_outcome(cell, r, "sigprobe-run.exe under Wine")


def run_kernel_cells(build: Path, env: dict, runs: list, window_scale: float, on_outcome,
                     pyext: Path | None = None) -> dict:
    """The Windows kernel cells: real Windows Jupyter kernels under Wine, run
    by the Windows CPython (winpython.py) with its own jupyter_client and
    ipykernel and the extension probe cross-built for it, through the same
    kernel_driver.py as on POSIX; the runner listens on loopback TCP (Wine 8
    has no AF_UNIX). Without that Python (no network for its first download)
    each cell is unsupported, saying why. Returns the interpreter's versions.
    pyext: the folder of the extension probe built for that Python, if already
    built (else it is built here)."""
    from . import winpython
    versions: dict = {}
    subject_runs = [r for r in runs if r[0].kind == "subject"]
    if subject_runs:
        versions = run_subject_cells(build, env, subject_runs, on_outcome)
        runs = [r for r in runs if r[0].kind != "subject"]
        if not runs:
            return versions
    try:
        pyext = pyext or winpython.ensure_pyext(build)
    except (MissingDependency, BuildFailed) as e:
        for cell, _ in runs:
            on_outcome(cell, pyhosts.unsupported_outcome(cell, f"no Windows Python under Wine: {e}"))
        return {}
    exe = winpython.home(build) / "python.exe"
    interp = pyhosts.Interpreter(str(exe), pyext, {})
    # A lane (a driver and its kernels) per interrupt mode, side by side: a
    # Wine kernel's run mostly waits (ipykernel's poller, the runner's
    # window), and one lane for both modes was the matrix's longest path
    # (--repeat 1: 26.2-27.9 s against 23.9-25.0 s, 3 alternating pairs).
    lanes = list(pyhosts.grouped(runs, lambda cell: pyhosts.JUPYTER_HOSTS[cell.host]).values())
    sessions = [pyhosts.JupyterSession(build / "sigprobe-run.exe", interp, build, window_scale,
                                       launch=command(str(exe)), path=winpython.wine_path,
                                       env={**env, "PYTHONUTF8": "1"}, attach="tcp") for _ in lanes]
    return {**versions, **pyhosts.run_side_by_side(sessions, lanes, on_outcome)}


def run_subject_cells(build: Path, env: dict, runs: list, on_outcome, jobs: int = 2) -> dict:
    """The built-in subjects' cells (`--only subjects`) in the Windows
    CPython's kernels under Wine, by sigprobe check's machinery
    (check/matrix.py, check/winhost.py); without that Python each is
    unsupported, saying why. Returns the interpreter's versions."""
    from ..check import matrix, winhost
    from . import winpython
    try:
        winpython.ensure(build)
    except MissingDependency as e:
        for cell, _ in runs:
            on_outcome(cell, pyhosts.unsupported_outcome(cell, f"no Windows Python under Wine: {e}"))
        return {}
    return matrix.run_subjects(winhost.python_exe(build), None, runs, jobs, on_outcome, winhost.wine_for(build, env))
