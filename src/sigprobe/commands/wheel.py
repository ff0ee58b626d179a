"""`sigprobe wheel`: sigprobe's wheel, built from a clone of the repository by
the pinned scikit-build-core through the CMake install rules: for this
interpreter and platform (what `pip wheel .` makes), or with `--platform
windows-wine` for the Windows CPython the project runs under Wine,
cross-built with MinGW-w64 (runners/winpython.build_wheel). Prints the
wheel's path."""
from __future__ import annotations

from pathlib import Path

from .. import paths
from ..errors import BadInput


def add_parsers(sub) -> None:
    w = sub.add_parser("wheel")
    w.add_argument("--platform", choices=["native", "windows-wine"], default="native",
                   help="native: for this interpreter and platform (default); windows-wine: for the Windows "
                        "CPython 3.11 under Wine (win_amd64), cross-built with MinGW-w64 in build-win/wheel/, "
                        "to install with that Python's own pip")
    w.add_argument("--out", type=Path, metavar="DIR", help="where the wheel goes (default: dist/ in the clone)")
    w.set_defaults(func=cmd_wheel)


def cmd_wheel(args) -> int:
    from .. import bootstrap
    root = bootstrap.checkout("`sigprobe wheel` (building sigprobe from its sources)")
    out = (args.out or root / "dist").resolve()
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {args.out}: not a directory")
    if args.platform == "windows-wine":
        from ..runners import wine, winpython
        wine.ensure_tools()
        wheel = winpython.build_wheel(wine.default_build(), out)
    else:
        bootstrap.ensure_system_packages(["build"])
        wheel = bootstrap.pip_wheel(out, root / "build-wheel")
    print(paths.rel(wheel))
    return 0
