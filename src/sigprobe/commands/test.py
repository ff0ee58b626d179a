"""`sigprobe test`: sigprobe's own suite, in a clone of the repository: CTest
in build/ (Criterion, pytest with real kernels, fuzzing, the Wine leg, the
installed-wheel check), then the C tests again under ASan + UBSan."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading

from .. import paths
from ..errors import SigprobeError


def add_parsers(sub) -> None:
    t = sub.add_parser("test")
    t.add_argument("--no-sanitizers", action="store_true", help="skip the second, sanitized run of the C tests")
    t.add_argument("ctest_args", nargs=argparse.REMAINDER, help="extra arguments for ctest, e.g. -R c.cells")
    t.set_defaults(func=cmd_test)


def _ctest(build_dir, extra: list[str], env: dict | None = None) -> int:
    # --no-tests=error: a selection that matches nothing fails instead of passing.
    # One group more than the cores: the Wine groups mostly wait (the machine
    # was 74 % idle while only py.windows ran on 2 cores).
    cmd = ["ctest", "--test-dir", str(build_dir), "--no-tests=error", "--output-on-failure",
           "-j", str((os.cpu_count() or 2) + 1), *extra]
    print("sigprobe: " + " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, env=env).returncode


def cmd_test(args) -> int:
    from .. import bootstrap
    bootstrap.checkout("`sigprobe test` (sigprobe's own suite)")
    bootstrap.ensure_system_packages(["build", "test", "browser"])
    bootstrap.ensure_dev_install()  # builds build/ (CTest's tree) and installs what the suite runs
    # The cysignals subject's interpreter (Python 3.12; about 90 s from nothing)
    # is set up beside the suite: its test waits for it (a lock) if it comes first.
    def cysignals_venv():
        try:
            bootstrap.ensure_cysignals_venv()
        except SigprobeError as e:  # its test tries again, and fails saying why
            bootstrap.log(f"{e}: the cysignals subject's tests will fail")

    venv312 = threading.Thread(target=cysignals_venv, name="cysignals-venv", daemon=True)
    venv312.start()
    extra = [a for a in args.ctest_args if a != "--"]
    # The sanitized build goes on beside the suite (which mostly waits on
    # kernels and Wine), its C tests run once both are done.
    asan: dict = {}
    builder = None
    if not args.no_sanitizers:
        bootstrap.log(f"building the C side with ASan + UBSan in {paths.rel(bootstrap.ASAN_BUILD)}/ (beside the suite)")

        def build():
            try:
                bootstrap.ensure_build(bootstrap.ASAN_BUILD, sanitize=True)
            except BaseException as e:  # reported once the suite is done
                asan["error"] = e
        builder = threading.Thread(target=build, name="asan-build", daemon=True)
        builder.start()
    rc = _ctest(bootstrap.DEFAULT_BUILD, extra)
    venv312.join()
    if builder is None:
        return rc
    builder.join()
    if "error" in asan:
        raise asan["error"]
    # The C tests only: the fuzz targets already run under both sanitizers.
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    return rc or _ctest(bootstrap.ASAN_BUILD, ["-R", r"^c\.", *extra], env)
