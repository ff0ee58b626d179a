"""The console host of `sigprobe check` on Windows (`--platform windows-wine`):
the user's code on a console of its own, interrupted by Ctrl+C the way a
person at that console does it (GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0)
from a process on the same console, in the same process group).

Run by the Windows CPython checked, with the standard library only:

    python.exe console_host.py SUBJECT_PY @SPEC

It gives itself a console (FreeConsole, then AllocConsole: under Wine a
process started from a Unix pipe has a console that cannot carry events
until then: Wine's console trap), starts
`python.exe SUBJECT_PY @SPEC` on it with Ctrl+C enabled (the flag a child
inherits), then stops hearing Ctrl+C itself (SetConsoleCtrlHandler(NULL,
TRUE) and SIGINT ignored). The child's output goes to this process's stderr.

stdin, one line: "at T" — send Ctrl+C when time.perf_counter_ns() (the clock
subject.py stamps with: QueryPerformanceCounter) reaches T, unless the code
has ended by then. stdin's end, before the code's: the code is ended
(TerminateProcess) and so is this host.
stdout, one line each:
    "ready PID"   the code's process started on this console
    "ok T"        Ctrl+C sent; T stamped just before the call
    "ended"       the code ended before T: nothing sent
    "error WHY"   a call failed (exit status 3)
and the exit status is the code's process's."""
import ctypes
import signal
import subprocess
import sys
import threading
import time

CTRL_C_EVENT = 0
SPIN_NS = 2_000_000  # the last stretch before T is spun, not slept (Windows sleeps in 1-15 ms steps)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def failed(call: str) -> int:
    code = ctypes.get_last_error()
    say(f"error {call} failed: {ctypes.FormatError(code).strip()} (error {code})")
    return 3


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # this host's own, not inherited on Windows
    k32 = ctypes.WinDLL("kernel32", use_last_error=True)
    k32.FreeConsole()
    if not k32.AllocConsole():
        return failed("AllocConsole()")
    # A console parent's default for its child, whatever this process inherited.
    if not k32.SetConsoleCtrlHandler(None, False):
        return failed("SetConsoleCtrlHandler(NULL, FALSE)")
    child = subprocess.Popen([sys.executable, *sys.argv[1:]], stdin=subprocess.DEVNULL, stdout=sys.stderr,
                             stderr=sys.stderr)
    # From now on Ctrl+C on this console is the code's alone.
    k32.SetConsoleCtrlHandler(None, True)
    say(f"ready {child.pid}")
    plan = {}

    def read_plan():
        line = sys.stdin.readline()
        if line.startswith("at "):
            plan["at"] = int(line.split()[1])
            line = sys.stdin.readline()
        if not line:  # the runner is gone or gave up: so is the code
            plan["gone"] = True
            child.kill()

    threading.Thread(target=read_plan, daemon=True).start()
    while "at" not in plan and child.poll() is None and not plan.get("gone"):
        time.sleep(0.005)
    if "at" in plan:
        at = plan["at"]
        while child.poll() is None and time.perf_counter_ns() < at - SPIN_NS:
            time.sleep(min(0.005, max(0.0, (at - SPIN_NS - time.perf_counter_ns()) / 1e9)))
        while child.poll() is None and time.perf_counter_ns() < at:
            pass
        if child.poll() is None:
            t = time.perf_counter_ns()
            if not k32.GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0):
                failed("GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0)")
                child.kill()
                child.wait()
                return 3
            say(f"ok {t}")
        else:
            say("ended")
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
