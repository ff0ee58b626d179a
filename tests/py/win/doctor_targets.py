"""Run by the Windows Python under Wine (tests/py/test_windows_python.py):
sets up processes the way a user's would be, runs `sigprobe doctor` on each
and prints {case: {"rc":.., "doc":.., "stderr":..}} as JSON on stdout.

    python doctor_targets.py REPO

Cases: plain (a child on this console), new-group (CREATE_NEW_PROCESS_GROUP),
detached (DETACHED_PROCESS: no console), jpy-event (an inherited auto-reset
event in JPY_INTERRUPT_EVENT and a handle to this process in JPY_PARENT_PID,
as jupyter_client's launcher does), jpy-not-inherited (the same variables, the
handles not inherited), self-new-group (doctor on itself, started in a new
group), gone (a pid that has exited), watch (--watch, which traces with
Linux's tracefs).
"""
import ctypes
import json
import os
import subprocess
import sys
from ctypes import wintypes

REPO = sys.argv[1]
SIGPROBE = os.path.join(REPO, "scripts", "sigprobe")
k32 = ctypes.WinDLL("kernel32", use_last_error=True)
k32.CreateEventW.restype = wintypes.HANDLE
k32.CreateEventW.argtypes = [ctypes.c_void_p, wintypes.BOOL, wintypes.BOOL, wintypes.LPCWSTR]
k32.GetCurrentProcess.restype = wintypes.HANDLE
k32.DuplicateHandle.argtypes = [wintypes.HANDLE, wintypes.HANDLE, wintypes.HANDLE, ctypes.POINTER(wintypes.HANDLE),
                                wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
CREATE_NEW_PROCESS_GROUP = 0x200
DETACHED_PROCESS = 0x8
# Targets live until killed below: a fixed lifetime ran out on a loaded machine before the last doctor read them.
SLEEPER = [sys.executable, "-c", "import time; [time.sleep(3600) for _ in iter(int, 1)]"]


class SecurityAttributes(ctypes.Structure):
    _fields_ = [("nLength", wintypes.DWORD), ("lpSecurityDescriptor", ctypes.c_void_p),
                ("bInheritHandle", wintypes.BOOL)]


def inheritable_event():
    """What jupyter_client.win_interrupt.create_interrupt_event makes."""
    sa = SecurityAttributes(ctypes.sizeof(SecurityAttributes), None, True)
    return k32.CreateEventW(ctypes.byref(sa), False, False, None)


def inheritable_self():
    """What jupyter_client's launcher puts in JPY_PARENT_PID on Windows."""
    h = wintypes.HANDLE()
    me = k32.GetCurrentProcess()
    if not k32.DuplicateHandle(me, me, me, ctypes.byref(h), 0, True, 2):
        raise OSError(ctypes.get_last_error(), "DuplicateHandle")
    return h.value


def doctor(*args, **kw):
    r = subprocess.run([sys.executable, SIGPROBE, "doctor", *args], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL, **kw)
    out = {"rc": r.returncode, "stderr": r.stderr}
    try:
        out["doc"] = json.loads(r.stdout)
    except ValueError:
        out["stdout"] = r.stdout
    return out


def main():
    # Under Wine a process whose stdio are pipes has no real console (see
    # ../shared wine notes): make one, which the children inherit.
    k32.FreeConsole()
    k32.AllocConsole()
    results, procs = {}, []
    event, parent = inheritable_event(), inheritable_self()
    jpy_env = dict(os.environ, JPY_INTERRUPT_EVENT=str(event), JPY_PARENT_PID=str(parent))
    setups = {
        "plain": dict(),
        "new-group": dict(creationflags=CREATE_NEW_PROCESS_GROUP),
        "detached": dict(creationflags=DETACHED_PROCESS),
        "jpy-event": dict(env=jpy_env, close_fds=False),
        "jpy-not-inherited": dict(env=jpy_env, close_fds=True),
    }
    try:
        for case, kw in setups.items():
            p = subprocess.Popen(SLEEPER, stdin=subprocess.DEVNULL, **kw)
            procs.append(p)
            results[case] = {**doctor("--pid", str(p.pid), "--json"), "target_pid": p.pid}
        results["plain-text"] = doctor("--pid", str(procs[0].pid))
        results["self-new-group"] = doctor("--json", creationflags=CREATE_NEW_PROCESS_GROUP)
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        results["gone"] = doctor("--pid", gone.stdout.strip())
        results["watch"] = doctor("--watch", "1")
        results["setup"] = {"pid": os.getpid(), "event": event, "parent_handle": parent}
    finally:
        for p in procs:
            p.kill()
            p.wait()
    sys.stdout.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
