import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "sigprobe"


@pytest.fixture(scope="session")
def build_dir() -> Path:
    return Path(os.environ.get("SIGPROBE_BUILD_DIR", ROOT / "build"))


@pytest.fixture(scope="session")
def sigprobe(build_dir):
    """Runs the real `sigprobe` command (under this interpreter: the venv's)."""

    def run(*args, build=True, **kw):
        argv = [sys.executable, str(SCRIPT), *args]
        if build and args and args[0] in ("list", "run"):
            argv += ["--build-dir", str(build_dir)]
        return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=kw.pop("timeout", 300), **kw)

    return run


# Two jobs at a time: the Windows group took 95 s warm here with 2 and 93 s
# with 4, and on a slower machine fewer Windows kernels start at once on its
# two cores (a kernel's start under Wine is CPU-bound imports).
WINE_JOBS_AT_ONCE = 2


@pytest.fixture(scope="session")
def winpy(request, tmp_path_factory):
    """(build, env) with the Windows side built, the Windows Python made and a
    wineserver running (the Windows tests: test_windows_python.py,
    test_wheel_windows.py, one set-up for both in one session).

    Once it is ready, the work each of those modules names in its WINE_JOBS
    ({name: fn(build, env, pyext, tmp_path_factory)}, pyext: the folder of the
    extension probe built for that Python) starts side by side, and a
    fixture takes its result with wine_job(request, name). Each job has a
    Wine prefix of its own (wine.clone_prefix), so a wineserver of its own:
    through one server, every Wine process of every job waited on the others
    (a Windows kernel of one job once did not answer within 120 s on a slow
    machine). The Windows wheel (test_wheel_windows.py) is such a job too,
    compiled while the tests before it wait on Wine."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    from sigprobe.runners import wine, winpython
    missing = [t for t in ("x86_64-w64-mingw32-gcc", "wine", "wineserver") if not shutil.which(t)]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: install with: apt-get install -y gcc-mingw-w64-x86-64 wine wine64")
    # Three independent set-ups side by side (one after the other, about 4 min
    # in a fresh clone): the MinGW build, the Windows CPython with the
    # extension probe built for it, and the Wine prefix.
    build = wine.default_build()
    with ThreadPoolExecutor(3) as pool:
        steps = [pool.submit(wine.ensure_build, build), pool.submit(winpython.ensure_pyext, build),
                 pool.submit(wine.ensure_prefix, build)]
    for step in steps:
        step.result()
    pyext = steps[1].result()  # jobs never build it again: two builds of one tree would collide
    # The modules' jobs, in the session's order (the command line's).
    modules = dict.fromkeys(item.module for item in request.session.items if hasattr(item, "module"))
    jobs = {name: fn for m in modules for name, fn in getattr(m, "WINE_JOBS", {}).items()}
    # The factory makes its base folder on first use, and two threads asking at
    # once each make one (a job's mktemp then sees a different base): made here.
    tmp_path_factory.getbasetemp()

    def in_own_prefix(name, fn):
        with wine.cloned_wineserver(build, tmp_path_factory.mktemp(f"wine-{name}") / "prefix") as env:
            return fn(build, env, pyext, tmp_path_factory)

    # The pool is left (every job waited for, each server stopped) before the tests' own server stops.
    with wine.wineserver(build) as env, ThreadPoolExecutor(max(min(len(jobs), WINE_JOBS_AT_ONCE), 1),
                                                                thread_name_prefix="wine-job") as pool:
        request.config.sigprobe_wine_jobs = {name: pool.submit(in_own_prefix, name, fn) for name, fn in jobs.items()}
        yield build, env


def wine_job(request, name: str):
    """The result of a module's WINE_JOBS entry (see winpy), waiting for it."""
    request.getfixturevalue("winpy")
    return request.config.sigprobe_wine_jobs[name].result()
