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
