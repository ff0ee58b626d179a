"""Where things are: the native parts inside the package, the source checkout
(when this package runs from one), and where results go.

The C runner, the probes and the extension probe are installed by CMake into
the package's `_native/` directory (pyproject.toml, CMakeLists.txt), so they
are found from the package: never from PATH, never from a build tree it was
not installed from. A checkout is recognised by the files around the package's
own source (`src/sigprobe/` beside `pyproject.toml` and `harness/`); only
there do the commands that build or test sigprobe itself work, and only there
do results go to `results/`."""
from __future__ import annotations

import os
from pathlib import Path

import sigprobe

NATIVE = "_native"
RUNNER = "sigprobe-run" + (".exe" if os.name == "nt" else "")


def native_dir() -> Path:
    """The package's `_native/` directory that holds the runner. An editable
    install serves the Python sources from the checkout and CMake's installed
    files from site-packages, so every directory of the package is looked in."""
    dirs = [Path(d) / NATIVE for d in sigprobe.__path__]
    for d in dirs:
        if (d / RUNNER).is_file():
            return d
    return dirs[-1]


def source_root() -> Path | None:
    """The checkout this package runs from, or None when it is installed."""
    root = Path(sigprobe.__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "harness").is_dir() and (root / "src" / "sigprobe").is_dir():
        return root
    return None


def results_dir() -> Path:
    """results/ in a checkout; ./sigprobe-results/ (the working directory) when installed."""
    root = source_root()
    return root / "results" if root else Path.cwd() / "sigprobe-results"


def rel(p: Path) -> str:
    """p relative to the working directory where it is below it, else as given."""
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)
