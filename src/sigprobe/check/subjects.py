"""The calls everyone uses, as `sigprobe check` subjects (`--subject NAME`,
and the `subjects` section of the matrix): each waits or works for
SUBJECT_MS unless interrupted. Code and setup are plain Python for the
interpreter checked; `needs` names a module it must have (else the subject
is `unsupported` there, with the reason); `windows` is its form on Windows
where the POSIX one means nothing there, and `posix_only` one with no such form; `prepare` builds what a subject
needs for the interpreter (the cysignals extension, the matmul's size) and gives its setup code,
or raises cysignals_ext.Unavailable with the reason; `busy` marks one that works rather than waits
(its runs compete for the cores, so fewer run at once)."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Callable, Optional

from . import cysignals_ext

SUBJECT_MS = 2000
AFTER_MS = 300


@dataclass(frozen=True)
class Builtin:
    name: str
    what: str  # the row's label in the reference
    code: str
    setup: str = ""
    needs: str = ""  # a module the interpreter must have
    posix_only: bool = False
    prepare: Optional[Callable[[str], str]] = None  # python -> setup code (Unavailable: why not)
    # (setup, code) on Windows, where the POSIX one has no meaning there (libc, a `sleep`
    # command, select() on a pipe): the same call as near as Windows has it.
    windows: Optional[tuple] = None
    busy: bool = False


# One matmul of a size that takes about MATMUL_MS on this machine, measured once per subject
# (with the interpreter checked, OpenBLAS's threads and all), then the same size in every run of it:
# its uninterrupted run says when that work ends. A fixed size took 0.1 s on one machine and
# 14 s on another; ended before the interrupt at AFTER_MS, a run says nothing. Shorter than the
# others' SUBJECT_MS: it keeps every core busy.
MATMUL_MS = 1000
MATMUL_PROBE = ("import time, numpy\n"
                "b = numpy.random.default_rng(1).random((800, 800)); b @ b\n"
                "dt = []\n"
                "for _ in range(3):\n"
                "    t = time.perf_counter(); b @ b; dt.append(time.perf_counter() - t)\n"
                "print(min(dt))\n")
MATMUL_MIN, MATMUL_MAX = 800, 8000


def matmul_setup(python: str) -> str:
    """The numpy.matmul subject's setup for `python`: square matrices sized so
    that one product takes about MATMUL_MS (an n^3 cost, scaled from 800's)."""
    try:
        r = subprocess.run([python, "-c", MATMUL_PROBE], capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        dt = float(r.stdout.strip()) if r.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        raise cysignals_ext.Unavailable(f"numpy's matmul could not be timed with {python}: {e}") from None
    if dt is None:
        last = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        raise cysignals_ext.Unavailable(f"numpy's matmul could not be timed with {python}: {last[:200]}")
    n = round(MATMUL_MIN * (MATMUL_MS / 1000 / max(dt, 1e-6)) ** (1 / 3))
    n = min(MATMUL_MAX, max(MATMUL_MIN, n))
    return f"import numpy\na = numpy.random.default_rng(1).random(({n}, {n}))"


_S = SUBJECT_MS / 1000
BUILTINS = {b.name: b for b in (
    Builtin("time.sleep", "time.sleep()", f"time.sleep({_S})", "import time"),
    Builtin("lock.acquire", "threading.Lock.acquire(timeout=…) on a held lock", f"lock.acquire(timeout={_S})",
            "import threading\nlock = threading.Lock()\nlock.acquire()"),
    Builtin("event.wait", "threading.Event.wait(timeout)", f"event.wait({_S})",
            "import threading\nevent = threading.Event()"),
    Builtin("queue.get", "queue.Queue.get(timeout=…)", f"q.get(timeout={_S})", "import queue\nq = queue.Queue()"),
    Builtin("subprocess.run", "subprocess.run() of a sleeping child",
            f"subprocess.run(['sleep', '{_S:g}'])", "import subprocess",
            windows=("import subprocess, sys",
                     f"subprocess.run([sys.executable, '-c', 'import time; time.sleep({_S})'])")),
    # Windows' select() takes sockets only: one end of a socket pair there.
    Builtin("select.select", "select.select() on a pipe", f"select.select([r], [], [], {_S})",
            "import os, select\nr, w = os.pipe()",
            windows=("import select, socket\nr, w = socket.socketpair()", f"select.select([r], [], [], {_S})")),
    Builtin("busy-loop", "a pure-Python busy loop",
            f"end = time.perf_counter() + {_S}\nwhile time.perf_counter() < end:\n    pass", "import time", busy=True),
    Builtin("ctypes.CDLL", "a native call through ctypes.CDLL (GIL released): libc sleep()",
            f"libc.sleep({int(_S)})", "import ctypes\nlibc = ctypes.CDLL(None)",
            windows=("import ctypes\nk32 = ctypes.CDLL('kernel32')", f"k32.Sleep({SUBJECT_MS})")),
    Builtin("ctypes.PyDLL", "a native call through ctypes.PyDLL (GIL held): libc sleep()",
            f"libc.sleep({int(_S)})", "import ctypes\nlibc = ctypes.PyDLL(None)",
            windows=("import ctypes\nk32 = ctypes.PyDLL('kernel32')", f"k32.Sleep({SUBJECT_MS})")),
    # One matmul, sized on this machine to take about MATMUL_MS (matmul_setup); on Windows, where the
    # interpreter runs under Wine and cannot be timed apart, a fixed size.
    Builtin("numpy.matmul", "a large numpy matmul (OpenBLAS threads)", "a @ a",
            "import numpy\na = numpy.random.default_rng(1).random((1800, 1800))", needs="numpy",
            prepare=matmul_setup, busy=True),
    # C code inside sig_on() ... sig_off() with sig_check() in its loop, the GIL held (cysignals_spin.pyx),
    # built for the interpreter measured; cysignals needs Python >= 3.12.
    Builtin("cysignals", "a C extension looping in sig_on() … sig_off() with sig_check() (cysignals)",
            f"spin({_S})", posix_only=True, prepare=cysignals_ext.setup, busy=True),
)}


def subject(name: str, python: str, windows: bool = False):
    """The check Subject of a built-in, for the interpreter python (a subject
    with `prepare` is built for it: cysignals_ext.Unavailable says why not);
    windows: its Windows form (a posix_only one has none)."""
    from . import Subject
    b = BUILTINS[name]
    if windows and b.windows:
        return Subject(name, "code", code=b.windows[1], setup=b.windows[0])
    return Subject(name, "code", code=b.code, setup=b.prepare(python) if b.prepare and not windows else b.setup)
