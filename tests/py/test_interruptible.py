"""sigprobe/interruptible.h, the recommended pattern shipped as a header: it
compiles warning-free (gcc and clang, C99 and C11, -Wall -Wextra -pedantic;
MinGW-w64 for Windows), and a test extension built on it is interrupted from
inside its loop, with the GIL held and without it, while the loop runs
untouched when nothing interrupts it."""
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INCLUDE = ROOT / "src" / "sigprobe" / "include"
SPIN = Path(__file__).resolve().parent / "fixtures" / "interruptible" / "spin.c"
WARNINGS = ["-Wall", "-Wextra", "-pedantic", "-Werror"]


def python_include() -> str:
    return sysconfig.get_paths()["include"]


@pytest.mark.parametrize("cc", ["gcc", "clang"])
@pytest.mark.parametrize("std", ["c99", "c11"])
def test_the_header_compiles_without_warnings(cc, std, tmp_path):
    if not shutil.which(cc):
        pytest.fail(f"{cc} is not installed (scripts/sigprobe test installs it)")
    r = subprocess.run([cc, f"-std={std}", *WARNINGS, "-isystem", python_include(), "-I", str(INCLUDE),
                        "-fPIC", "-c", str(SPIN), "-o", str(tmp_path / "spin.o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_the_header_compiles_with_mingw_for_windows(tmp_path):
    from sigprobe.runners import wine, winpython
    wine.ensure_tools()  # MinGW-w64 (installed by the test command)
    mingw = shutil.which("x86_64-w64-mingw32-gcc")
    headers = winpython.ensure_headers(wine.default_build())  # CPython 3.11's, as the Windows leg uses them
    r = subprocess.run([mingw, "-std=c99", *WARNINGS, "-isystem", str(headers), "-I", str(INCLUDE),
                        "-c", str(SPIN), "-o", str(tmp_path / "spin.obj")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def spin_dir(tmp_path_factory):
    """The test extension, built for this interpreter (with asserts on: the
    header's preconditions are checked)."""
    d = tmp_path_factory.mktemp("spin")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    r = subprocess.run(["gcc", "-std=c99", *WARNINGS, "-O2", "-UNDEBUG", "-isystem", python_include(),
                        "-I", str(INCLUDE), "-fPIC", "-shared", str(SPIN), "-o", str(d / f"spin{suffix}")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return d


# Python's own SIGINT handler, whatever the suite inherited: started with
# SIGINT ignored (a background job), Python leaves it ignored, and neither
# kill nor interrupt_main() would reach the loop.
DEFAULT_SIGINT = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def run_python(spin_dir, code: str) -> str:
    r = subprocess.run([sys.executable, "-c", DEFAULT_SIGINT + textwrap.dedent(code)], capture_output=True, text=True,
                       cwd=spin_dir, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.parametrize("nogil", [False, True], ids=["gil", "nogil"])
def test_an_interrupt_stops_the_loop_from_inside(spin_dir, nogil):
    """interrupt_main() from another thread, as ipykernel's Windows poller
    does (it needs the GIL, which the loop lets go of now and then): the
    KeyboardInterrupt comes out of the call, long before the loop's end."""
    out = run_python(spin_dir, f"""
        import _thread, threading, spin
        threading.Timer(0.2, _thread.interrupt_main).start()
        try:
            spin.spin(10**15, 10000, {nogil})
            print("completed")
        except KeyboardInterrupt:
            print("interrupted", spin.calls())
    """)
    verdict, calls = out.split()
    assert verdict == "interrupted"
    assert 0 < int(calls) < 10**15


def test_a_real_sigint_stops_the_loop(spin_dir):
    out = run_python(spin_dir, """
        import os, signal, threading, spin
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            spin.spin(10**15, 10000, False)
        except KeyboardInterrupt:
            print("interrupted")
    """)
    assert out == "interrupted"


def test_nothing_stops_a_loop_that_nothing_interrupts(spin_dir):
    out = run_python(spin_dir, """
        import spin
        spin.spin(2_000_000, 100, False)
        spin.spin(2_000_000, 100, True)
        print(spin.calls())
    """)
    assert out == "2000000"


def test_an_interval_of_0_checks_every_call(spin_dir):
    """A SIGINT already pending when the loop starts stops the no-GIL variant
    (which takes the GIL only when a check is due) at its first call with
    interval 0, and only once the interval is up otherwise."""
    out = run_python(spin_dir, """
        import spin
        for interval in (0, 20000):
            try:
                spin.spin(10**15, interval, True, True)
            except KeyboardInterrupt:
                print(spin.calls())
    """)
    first, later = map(int, out.split())
    assert first == 0
    assert later > 0


@pytest.mark.parametrize("variant,swap,nogil,interval_us", [
    ("the no-GIL variant with the GIL held", ("sp_interruptible_check(&it)", "sp_interruptible_check_nogil(&it)"),
     False, 0),
    ("the GIL variant without the GIL", ("sp_interruptible_check_nogil(&it)", "sp_interruptible_check(&it)"),
     True, 0),
    # with an interval, checked where the clock is read, not on the fast path
    ("the GIL variant without the GIL", ("sp_interruptible_check_nogil(&it)", "sp_interruptible_check(&it)"),
     True, 1000)], ids=["nogil-variant-with-gil", "gil-variant-without-gil", "gil-variant-without-gil-interval"])
def test_a_variant_called_in_the_wrong_gil_state_fails_its_precondition(tmp_path, variant, swap, nogil, interval_us):
    """The precondition is an assert in debug builds: either variant called in
    the other's GIL state aborts rather than deadlocking or corrupting state."""
    bad = tmp_path / "bad.c"
    text = SPIN.read_text()
    assert swap[0] in text, variant
    bad.write_text(text.replace(swap[0], swap[1]))
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    r = subprocess.run(["gcc", "-std=c99", "-UNDEBUG", "-isystem", python_include(), "-I", str(INCLUDE), "-fPIC",
                        "-shared", str(bad), "-o", str(tmp_path / f"spin{suffix}")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-c", f"import spin; spin.spin(10**12, {interval_us}, {nogil})"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == -6, (variant, r.returncode, r.stderr)  # SIGABRT from assert()
    assert "PyGILState_Check" in r.stderr


def handover_us() -> int:
    """SP_INTERRUPTIBLE_HANDOVER_US, as the header defines it."""
    import re
    text = (INCLUDE / "sigprobe" / "interruptible.h").read_text()
    return int(re.search(r"#define SP_INTERRUPTIBLE_HANDOVER_US (\d+)L", text).group(1))


# Iterations: with an interval each call is a decrement (about 1 ns); with 0 each reads the clock.
@pytest.mark.parametrize("interval_us,n", [(0, 3_000_000), (1000, 100_000_000)])
def test_the_gil_variant_lets_go_of_the_gil_once_per_hand_over_period(spin_dir, interval_us, n):
    """CPython gives the GIL to a waiting thread only after it waited a whole
    switch interval (5 ms) with no release; released more often, the loop takes
    it back each time before the waiter runs (under Wine a kernel's poller then
    waited up to a second). So the GIL variant lets go of it once per hand-over
    period (longer than the switch interval), not once per check, and does let
    go of it."""
    period_us = handover_us()
    assert period_us > 5000, "the hand-over period must exceed CPython's default switch interval"
    out = run_python(spin_dir, f"""
        import time, spin
        t0 = time.perf_counter()
        spin.spin({n}, {interval_us}, False)
        print(time.perf_counter() - t0, spin.releases())
    """)
    elapsed_s, releases = out.split()
    most = float(elapsed_s) * 1e6 / period_us
    assert 1 <= int(releases) <= most + 1, (releases, elapsed_s)


def test_a_caught_signal_is_seen_without_waiting_for_the_gil_hand_over(spin_dir):
    """With a pending signal, the GIL variant stops at the first clock read,
    long before its first GIL hand-over is due (an hour away here)."""
    out = run_python(spin_dir, """
        import spin
        try:
            spin.spin(10**15, 3600 * 10**6, False, True)
            print("completed")
        except KeyboardInterrupt:
            print("interrupted", spin.calls())
    """)
    verdict, calls = out.split()
    assert verdict == "interrupted"
    assert int(calls) < 10**6


def test_bench_measures_what_the_header_costs(build_dir):
    """`sigprobe bench`'s figures for the header come out (their values are
    figures, not asserted: a bench, not a timed test)."""
    from sigprobe.commands import bench
    cost = bench.interruptible_cost(build_dir / "pyext")
    assert "error" not in cost, cost
    assert set(cost) == {"default_interval_us", "fast_path_ns", "release_ns", "release_with_a_thread_waiting_ns",
                         "loop_ns_per_iteration", "loop_slowdown_pct"}
    assert cost["default_interval_us"] == 1000 and cost["fast_path_ns"] > 0
