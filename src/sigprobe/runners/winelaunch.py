"""How a Windows program is started under Wine, for every caller (the
windows-wine runner, the Windows CPython, its kernels)."""
from __future__ import annotations

import os
import platform
import shutil


def command(*args: str) -> list[str]:
    """`wine ARGS` with address-space randomisation off for the Wine process
    tree (`setarch -R`: every process Wine starts inherits it). Debian's Wine
    has no preloader: its loader is a fixed-address executable (0x7d000000)
    whose heap the kernel places at random in the next 1 GiB, so now and then
    it covers 0x7ffe0000, where each Wine process must map its shared user
    data, and that process dies at start ("failed to map the shared user
    data", c0000018): a probe (CreateProcess error 1359), its console host
    (the probe then has no console: AttachConsole error 6) or a kernel."""
    setarch = shutil.which("setarch") if os.name == "posix" else None
    return [setarch, platform.machine(), "-R", "wine", *args] if setarch else ["wine", *args]
