"""The calls everyone uses, as `sigprobe check` subjects (`--subject NAME`,
and the `subjects` section of the matrix): each waits or works for
SUBJECT_MS unless interrupted. Code and setup are plain Python for the
interpreter checked; `needs` names a module it must have (else the subject
is `unsupported` there, with the reason); `windows` is its form on Windows
where the POSIX one means nothing there, and `posix_only` one with no such form; `prepare` builds what a subject
needs for the interpreter (the cysignals extension) and gives its setup code,
or raises cysignals_ext.Unavailable with the reason."""
from __future__ import annotations

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
            f"end = time.perf_counter() + {_S}\nwhile time.perf_counter() < end:\n    pass", "import time"),
    Builtin("ctypes.CDLL", "a native call through ctypes.CDLL (GIL released): libc sleep()",
            f"libc.sleep({int(_S)})", "import ctypes\nlibc = ctypes.CDLL(None)",
            windows=("import ctypes\nk32 = ctypes.CDLL('kernel32')", f"k32.Sleep({SUBJECT_MS})")),
    Builtin("ctypes.PyDLL", "a native call through ctypes.PyDLL (GIL held): libc sleep()",
            f"libc.sleep({int(_S)})", "import ctypes\nlibc = ctypes.PyDLL(None)",
            windows=("import ctypes\nk32 = ctypes.PyDLL('kernel32')", f"k32.Sleep({SUBJECT_MS})")),
    # One matmul of a fixed size (the same work in every run, so that its uninterrupted run says when it
    # ends): about 0.8 s on 2 idle cores here, several seconds when runs share the cores.
    Builtin("numpy.matmul", "a large numpy matmul (OpenBLAS threads)", "a @ a",
            "import numpy\na = numpy.random.default_rng(1).random((1800, 1800))", needs="numpy"),
    # C code inside sig_on() ... sig_off() with sig_check() in its loop, the GIL held (cysignals_spin.pyx),
    # built for the interpreter measured; cysignals needs Python >= 3.12.
    Builtin("cysignals", "a C extension looping in sig_on() … sig_off() with sig_check() (cysignals)",
            f"spin({_S})", posix_only=True, prepare=cysignals_ext.setup),
)}


def subject(name: str, python: str, windows: bool = False):
    """The check Subject of a built-in, for the interpreter python (a subject
    with `prepare` is built for it: cysignals_ext.Unavailable says why not);
    windows: its Windows form (a posix_only one has none)."""
    from . import Subject
    b = BUILTINS[name]
    if windows and b.windows:
        return Subject(name, "code", code=b.windows[1], setup=b.windows[0])
    return Subject(name, "code", code=b.code, setup=b.prepare(python) if b.prepare else b.setup)
