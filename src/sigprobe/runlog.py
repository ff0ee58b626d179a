"""What kernels, interpreters and Wine print during a run goes to one log file
beside the results document (<out>.log), never in between the progress lines.
The file exists only when something was printed; the run's last lines name it."""
from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from pathlib import Path

_lock = threading.Lock()
_path: Path | None = None
_file = None
_lines = 0


def write(text: str) -> None:
    """Appends to the run's log; outside a run (no log open), to stderr."""
    global _file, _lines
    with _lock:
        if _path is None:
            sys.stderr.write(text)
            return
        if _file is None:
            _file = open(_path, "w", encoding="utf-8", errors="replace")
        _file.write(text)
        _file.flush()
        _lines += text.count("\n")


def relay(stream) -> threading.Thread:
    """Copies a child's text stream into the log until EOF, in a thread."""
    def pump():
        for line in stream:
            write(line)
    t = threading.Thread(target=pump, name="log-relay", daemon=True)
    t.start()
    return t


@contextmanager
def to(path: Path):
    """The log of one run; yields a function that says how many lines it got."""
    global _path, _file, _lines
    try:
        path.unlink()  # the log of an earlier run would be mistaken for this one's
    except OSError:
        pass
    with _lock:
        _path, _file, _lines = path, None, 0
    try:
        yield lambda: _lines
    finally:
        with _lock:
            if _file is not None:
                _file.close()
            _path, _file = None, None
