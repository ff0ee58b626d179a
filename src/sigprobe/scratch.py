"""Temporary directories of a run, named for their owner's pid so that what a
killed run (SIGKILL: no clean-up of its own) left behind is recognised and
removed by the next one."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

# The Jupyter driver's directory (kernelspecs, connection files, the kernels'
# IPython and Jupyter directories, their logs); the runners' Unix sockets
# (short: a socket path is limited to about 108 bytes); the magic's selftest;
# a check's uninterrupted run under Wine (check/winhost.py); the Wine prefixes
# cloned for a windows-wine run's extra wineservers (runners/wine.py).
PREFIXES = ("sigprobe-jupyter-", "spj", "spst", "sigprobe-check-", "sigprobe-wine-")
# A Unix socket's path is limited to about 108 bytes: the runners' sockets go
# in TMPDIR when it leaves room for <prefix><pid>-<random>/<name>, else /tmp.
SOCKET_BASE_MAX = 40
_OWNED = re.compile(r"^(?:" + "|".join(map(re.escape, PREFIXES)) + r")(\d+)-[^/]+$")


def make_dir(prefix: str, base: str | None = None) -> Path:
    """A new directory only this user can enter (mkdtemp: 0700), named
    <prefix><pid>-<random>."""
    assert prefix in PREFIXES
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=base))


def socket_base() -> str:
    """Where a run's Unix sockets go: TMPDIR, like the rest of its temporary
    files, when it is short enough for a socket path; /tmp otherwise."""
    tmp = os.environ.get("TMPDIR", "")
    if tmp and os.path.isabs(tmp) and len(tmp) <= SOCKET_BASE_MAX and os.path.isdir(tmp):
        return tmp
    return "/tmp"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # POSIX only: on Windows this would terminate the process
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale() -> list[str]:
    """Removes the directories whose owning process is gone; returns them."""
    if os.name == "nt":
        return []
    gone = []
    for base in sorted({tempfile.gettempdir(), socket_base()}):
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            m = _OWNED.match(name)
            path = os.path.join(base, name)
            if not m or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))) or not os.path.isdir(path):
                continue
            try:
                if os.stat(path).st_uid != os.getuid():
                    continue  # another user's: theirs to clean
            except OSError:
                continue
            shutil.rmtree(path, ignore_errors=True)
            if not os.path.exists(path):
                gone.append(path)
    return gone
