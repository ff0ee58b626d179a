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


@pytest.fixture(scope="session")
def winpy(request, tmp_path_factory):
    """(build, env) with the Windows side built, the Windows Python made and a
    wineserver running (the Windows tests: test_windows_python.py,
    test_wheel_windows.py, one set-up for both in one session)."""
    import shutil
    import time
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
    # The Windows wheel (test_wheel_windows.py) is compiled while the tests
    # before it wait on Wine: from a fresh clone its C build is minutes.
    builder = None
    if any(item.path.name == "test_wheel_windows.py" for item in request.session.items):
        dest = tmp_path_factory.mktemp("dist")

        def build_wheel():
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "sigprobe", "wheel", "--platform", "windows-wine", "--out",
                                str(dest)], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900)
            return r, dest, time.perf_counter() - t0
        builder = ThreadPoolExecutor(1)
        request.config.sigprobe_windows_wheel = builder.submit(build_wheel)
    try:
        with wine.wineserver(build) as env:
            yield build, env
    finally:
        if builder is not None:
            builder.shutdown(wait=True)
