"""`sigprobe list`: every cell id for this platform; also what `run` and
`bench` share: finding the runner (prepare) and the catalog it lists."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .. import paths
from ..errors import MissingDependency
from . import options


def add_parsers(sub) -> None:
    ls = sub.add_parser("list")
    options.add_only(ls)
    options.add_platform(ls, "this machine's cells")
    options.add_build_dir(ls)
    ls.set_defaults(func=cmd_list)


def prepare(build_dir: Path | None) -> Path:
    """The directory holding the runner and probes: --build-dir (in a checkout,
    built there first), else the ones installed in the package."""
    from .. import bootstrap
    from ..runners import native
    native.base_multiplier()  # a bad SIGPROBE_TIMEOUT_MULTIPLIER is bad input, before any build
    if build_dir is None:
        build_dir = paths.native_dir()
    elif bootstrap.ROOT is not None:
        bootstrap.ensure_system_packages(["build"])
        bootstrap.ensure_build(build_dir)
    if not (build_dir / paths.RUNNER).is_file():
        raise MissingDependency(f"no C runner ({paths.RUNNER}) in {build_dir}: sigprobe is not built there")
    return build_dir


def runner_version(runner: Path) -> dict:
    r = subprocess.run([str(runner), "--version"], capture_output=True, text=True)
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        return {}


def catalog(build_dir: Path) -> list:
    """Every cell for this platform: the runner's native cells, then the
    Python and Jupyter cells (POSIX platforms; kernels only on Windows)."""
    from .. import catalog as cellmod
    from ..runners import python as pyhosts
    native_cells = cellmod.native_cells(build_dir / paths.RUNNER)
    platform = native_cells[0].platform if native_cells else "unknown"
    if platform not in ("linux", "macos", "windows"):
        return native_cells
    from ..check import matrix as subjects
    return (native_cells + pyhosts.python_cells(platform, cellmod.pyext_strategies(build_dir / "pyext"),
                                                cellmod.strategies(native_cells))
            + (subjects.subject_cells(platform) if platform != "windows" else []))


def cmd_list(args) -> int:
    from .. import catalog as cellmod
    from ..runners import wine
    if args.platform == "windows-wine":
        build = wine.ensure_build()
        with wine.wineserver(build) as env:
            cells = wine.catalog(build, env)
    else:
        cells = catalog(prepare(args.build_dir))
    for c in cellmod.select(cells, args.only):
        print(c.id)
    return 0
