"""`sigprobe doctor` on Windows: what a Ctrl+C, a Ctrl+Break or a Jupyter
interrupt would do to a live process, read with the Win32 API through ctypes
(standard library only, so it runs in any Python, a Jupyter kernel included).

The facts an interrupt depends on there, and where each is read:
  - the console: attached or not, its window, the processes on it and whether
    its input turns Ctrl+C into an event (ENABLE_PROCESSED_INPUT). For this
    process, GetConsoleProcessList/GetConsoleWindow/GetConsoleMode; for another
    one a helper process with no console of its own does AttachConsole(pid)
    and the same calls (AttachConsole's error says "no console" precisely);
  - the "ignore Ctrl+C" flag: bit 0 of RTL_USER_PROCESS_PARAMETERS.ConsoleFlags
    in the process's PEB, the bit CREATE_NEW_PROCESS_GROUP and
    SetConsoleCtrlHandler(NULL, TRUE) set and the console's control routine
    tests (undocumented; the same on Windows and Wine);
  - the command line and environment, from the PEB (ReadProcessMemory);
  - JPY_INTERRUPT_EVENT and JPY_PARENT_PID (a handle to the launcher, on
    Windows): whether the number names a handle the process holds, of which
    object type (NtQueryObject), and for an event whether it is auto-reset and
    signalled now (NtQueryEvent, which consumes nothing), for a process which
    pid it is and whether it still runs.

gather(pid, own) returns the facts; RULES turn them into conclusions (doctor/__init__.py
applies them and renders; sections(facts) are the Windows parts of the report).
This module imports on any platform (the rules and the rendering are tested on
Linux too); only gather() needs Windows.
"""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from ctypes import wintypes
from pathlib import Path

from .common import NoSuchProcess, _fmt_members, _kernel, _kv

PROCESS_QUERY_INFORMATION = 0x0400
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
PROCESS_VM_READ = 0x0010
PROCESS_DUP_HANDLE = 0x0040
SYNCHRONIZE = 0x00100000
DUPLICATE_SAME_ACCESS = 2
DETACHED_PROCESS = 0x00000008
ENABLE_PROCESSED_INPUT = 0x0001
STILL_ACTIVE = 259
WAIT_TIMEOUT = 0x102
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_HANDLE = 6
ERROR_INVALID_PARAMETER = 87

# x64 offsets (the only layout read here; a 32-bit reader or target is said so).
PEB_PROCESS_PARAMETERS = 0x20
PARAMS_CONSOLE_HANDLE = 0x10
PARAMS_CONSOLE_FLAGS = 0x18
PARAMS_COMMAND_LINE = 0x70
PARAMS_ENVIRONMENT = 0x80
ENV_LIMIT = 1 << 20

ATTACH_ERRORS = {ERROR_INVALID_HANDLE: "the process has no console",
                 ERROR_INVALID_PARAMETER: "no such process",
                 ERROR_ACCESS_DENIED: "access denied (the helper already had a console, or another user's process)"}


# ---- the Win32 calls, declared once (handles are pointer-sized) -------------

class _Api:
    def __init__(self):
        self.k32 = ctypes.WinDLL("kernel32", use_last_error=True)
        self.nt = ctypes.WinDLL("ntdll")
        k, n, H, D, B = self.k32, self.nt, wintypes.HANDLE, wintypes.DWORD, wintypes.BOOL
        sig = [
            (k.OpenProcess, H, [D, B, D]),
            (k.CloseHandle, B, [H]),
            (k.GetCurrentProcess, H, []),
            (k.GetExitCodeProcess, B, [H, ctypes.POINTER(D)]),
            (k.ReadProcessMemory, B, [H, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                      ctypes.POINTER(ctypes.c_size_t)]),
            (k.DuplicateHandle, B, [H, H, H, ctypes.POINTER(H), D, B, D]),
            (k.GetHandleInformation, B, [H, ctypes.POINTER(D)]),
            (k.GetProcessId, D, [H]),
            (k.WaitForSingleObject, D, [H, D]),
            (k.IsWow64Process, B, [H, ctypes.POINTER(B)]),
            (k.QueryFullProcessImageNameW, B, [H, D, wintypes.LPWSTR, ctypes.POINTER(D)]),
            (k.GetConsoleProcessList, D, [ctypes.POINTER(D), D]),
            (k.GetConsoleWindow, wintypes.HWND, []),
            (k.GetConsoleMode, B, [H, ctypes.POINTER(D)]),
            (k.CreateFileW, H, [wintypes.LPCWSTR, D, D, ctypes.c_void_p, D, D, H]),
            (k.AttachConsole, B, [D]),
            (k.FreeConsole, B, []),
            (n.NtQueryInformationProcess, ctypes.c_long, [H, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                                                          ctypes.POINTER(ctypes.c_ulong)]),
            (n.NtQueryObject, ctypes.c_long, [H, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                                              ctypes.POINTER(ctypes.c_ulong)]),
            (n.NtQueryEvent, ctypes.c_long, [H, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                                             ctypes.POINTER(ctypes.c_ulong)]),
        ]
        for fn, res, args in sig:
            fn.restype, fn.argtypes = res, args

    @staticmethod
    def err() -> int:
        return ctypes.get_last_error()


class _ProcessBasicInformation(ctypes.Structure):
    _fields_ = [("ExitStatus", ctypes.c_long), ("PebBaseAddress", ctypes.c_void_p),
                ("AffinityMask", ctypes.c_size_t), ("BasePriority", ctypes.c_long),
                ("UniqueProcessId", ctypes.c_size_t), ("InheritedFromUniqueProcessId", ctypes.c_size_t)]


class _UnicodeString(ctypes.Structure):
    _fields_ = [("Length", ctypes.c_ushort), ("MaximumLength", ctypes.c_ushort), ("Buffer", ctypes.c_void_p)]


class _EventBasicInformation(ctypes.Structure):
    _fields_ = [("EventType", ctypes.c_int), ("EventState", ctypes.c_long)]


# ---- reading another process (or this one, through the same calls) ----------

class _Target:
    def __init__(self, api: _Api, pid: int, own: bool, problems: list):
        self.api, self.pid, self.own, self.problems = api, pid, own, problems
        k = api.k32
        if own:
            self.h, self.owned = k.GetCurrentProcess(), False
        else:
            self.h, self.owned = None, True
            for access in (PROCESS_QUERY_INFORMATION | PROCESS_VM_READ | PROCESS_DUP_HANDLE | SYNCHRONIZE,
                           PROCESS_QUERY_LIMITED_INFORMATION):
                h = k.OpenProcess(access, False, pid)
                if h:
                    self.h = h
                    if access == PROCESS_QUERY_LIMITED_INFORMATION:
                        problems.append("memory and handles: not readable (OpenProcess denied PROCESS_VM_READ | "
                                        "PROCESS_DUP_HANDLE: another user's or a protected process)")
                    break
                code = api.err()
                if code == ERROR_INVALID_PARAMETER:
                    raise NoSuchProcess(f"no process with pid {pid}")
                if code != ERROR_ACCESS_DENIED:
                    raise NoSuchProcess(f"pid {pid}: OpenProcess failed with error {code}")
            if self.h is None:
                raise NoSuchProcess(f"pid {pid}: OpenProcess denied even PROCESS_QUERY_LIMITED_INFORMATION "
                                    f"(error 5): this process may not be inspected from here")
            code = wintypes.DWORD()
            if k.GetExitCodeProcess(self.h, ctypes.byref(code)) and code.value != STILL_ACTIVE:
                self.close()
                raise NoSuchProcess(f"no process with pid {pid} (it has exited, code {code.value})")
        self.readable = self._peb_readable()

    def close(self):
        if self.owned and self.h:
            self.api.k32.CloseHandle(self.h)
        self.h = None

    def _peb_readable(self) -> bool:
        if ctypes.sizeof(ctypes.c_void_p) != 8:
            self.problems.append("PEB: not read (this Python is 32-bit; only the x64 layout is read)")
            return False
        wow = wintypes.BOOL()
        if self.api.k32.IsWow64Process(self.h, ctypes.byref(wow)) and wow.value:
            self.problems.append("PEB: not read (a 32-bit process under WOW64; only the x64 layout is read)")
            return False
        pbi = _ProcessBasicInformation()
        st = self.api.nt.NtQueryInformationProcess(self.h, 0, ctypes.byref(pbi), ctypes.sizeof(pbi), None)
        if st != 0:
            self.problems.append(f"PEB: not read (NtQueryInformationProcess: NTSTATUS 0x{st & 0xFFFFFFFF:08X})")
            return False
        self.ppid = pbi.InheritedFromUniqueProcessId
        self.peb = pbi.PebBaseAddress
        return bool(self.peb)

    def read(self, addr: int, size: int) -> bytes | None:
        buf = ctypes.create_string_buffer(size)
        got = ctypes.c_size_t()
        if not self.api.k32.ReadProcessMemory(self.h, addr, buf, size, ctypes.byref(got)):
            return None
        return buf.raw[:got.value]

    def read_ptr(self, addr: int) -> int | None:
        b = self.read(addr, 8)
        return int.from_bytes(b, "little") if b and len(b) == 8 else None

    def params(self) -> int | None:
        return self.read_ptr(self.peb + PEB_PROCESS_PARAMETERS) if self.readable else None

    def unicode_string(self, addr: int) -> str | None:
        us = self.read(addr, ctypes.sizeof(_UnicodeString))
        if not us:
            return None
        s = _UnicodeString.from_buffer_copy(us)
        if not s.Buffer or not s.Length:
            return ""
        data = self.read(s.Buffer, s.Length)
        return data.decode("utf-16-le", errors="replace") if data else None

    def environment(self, params: int) -> dict | None:
        """The environment block: UTF-16 "k=v\\0" strings ending in an empty
        one, read page by page (the block's end is not known in advance)."""
        addr = self.read_ptr(params + PARAMS_ENVIRONMENT)
        if not addr:
            return None
        data = b""
        while len(data) < ENV_LIMIT:
            step = 4096 - (addr + len(data)) % 4096
            chunk = self.read(addr + len(data), step)
            if not chunk:
                break
            data += chunk
            end = _double_nul(data)
            if end is not None:
                data = data[:end]
                break
        text = data.decode("utf-16-le", errors="replace")
        env = {}
        for item in text.split("\0"):
            k, sep, v = item.partition("=")
            if sep and k:  # entries like "=C:=C:\\" (per-drive directories) have an empty name
                env[k] = v
        return env

    def image(self) -> str | None:
        buf = ctypes.create_unicode_buffer(1024)
        n = wintypes.DWORD(1024)
        if self.api.k32.QueryFullProcessImageNameW(self.h, 0, buf, ctypes.byref(n)):
            return buf.value
        return None

    def duplicate(self, value: int):
        """value as a handle of the target, duplicated into this process (or,
        for this process, checked and used as it is): (handle, close?, error)."""
        k = self.api.k32
        if self.own:
            flags = wintypes.DWORD()
            if not k.GetHandleInformation(value, ctypes.byref(flags)):
                return None, False, self.api.err()
            return value, False, 0
        dup = wintypes.HANDLE()
        if not k.DuplicateHandle(self.h, value, k.GetCurrentProcess(), ctypes.byref(dup), 0, False,
                                 DUPLICATE_SAME_ACCESS):
            return None, False, self.api.err()
        return dup.value, True, 0


def _double_nul(data: bytes) -> int | None:
    for i in range(0, len(data) - 3, 2):
        if data[i:i + 4] == b"\0\0\0\0":
            return i + 2
    return None


def _command_line_args(cmdline: str) -> list[str]:
    shell32 = ctypes.WinDLL("shell32")
    shell32.CommandLineToArgvW.restype = ctypes.POINTER(wintypes.LPWSTR)
    shell32.CommandLineToArgvW.argtypes = [wintypes.LPCWSTR, ctypes.POINTER(ctypes.c_int)]
    n = ctypes.c_int()
    argv = shell32.CommandLineToArgvW(cmdline, ctypes.byref(n))
    if not argv:
        return cmdline.split()
    try:
        return [argv[i] for i in range(n.value)]
    finally:
        ctypes.windll.kernel32.LocalFree(ctypes.cast(argv, ctypes.c_void_p))


# ---- handles named by the environment ---------------------------------------

def _object_type(api: _Api, h) -> str | None:
    buf = ctypes.create_string_buffer(1024)
    if api.nt.NtQueryObject(h, 2, buf, len(buf), None) != 0:  # ObjectTypeInformation
        return None
    us = _UnicodeString.from_buffer(buf)
    return ctypes.wstring_at(us.Buffer, us.Length // 2) if us.Buffer else None


def _handle_fact(api: _Api, target: _Target, var: str, value: str) -> dict:
    fact: dict = {"variable": var, "value": value}
    try:
        number = int(value)
    except ValueError:
        return {**fact, "valid": False, "why": "not a handle number"}
    if not target.readable and not target.own:
        return {**fact, "valid": None, "why": "the process's handles could not be read"}
    h, close, code = target.duplicate(number)
    if h is None:
        why = ("names no handle in that process" if code == ERROR_INVALID_HANDLE
               else f"DuplicateHandle/GetHandleInformation failed with error {code}")
        return {**fact, "valid": False, "why": why}
    try:
        fact["type"] = _object_type(api, h)
        if fact["type"] == "Event":
            info = _EventBasicInformation()
            if api.nt.NtQueryEvent(h, 0, ctypes.byref(info), ctypes.sizeof(info), None) == 0:
                fact["auto_reset"] = info.EventType == 1  # SynchronizationEvent
                fact["signalled_now"] = bool(info.EventState)
        elif fact["type"] == "Process":
            fact["process_pid"] = api.k32.GetProcessId(h)
            fact["process_running"] = api.k32.WaitForSingleObject(h, 0) == WAIT_TIMEOUT
    finally:
        if close:
            api.k32.CloseHandle(h)
    want = "Event" if var == "JPY_INTERRUPT_EVENT" else "Process"
    fact["valid"] = fact["type"] == want
    if not fact["valid"]:
        fact["why"] = f"a handle of type {fact['type'] or 'unknown'}, not {want}"
    return fact


# ---- the console --------------------------------------------------------------

def _console_here(api: _Api) -> dict:
    """The console of the calling process (used directly, and by the helper
    after it attached to another process's console)."""
    k = api.k32
    pids = (wintypes.DWORD * 256)()
    n = k.GetConsoleProcessList(pids, 256)
    if n == 0:
        return {"attached": False, "how": f"GetConsoleProcessList returned 0 (error {api.err()}): no console"}
    out = {"attached": True, "processes": [int(p) for p in pids[:min(n, 256)]],
           "window": bool(k.GetConsoleWindow()),
           "how": "GetConsoleProcessList, GetConsoleWindow, GetConsoleMode(CONIN$)"}
    conin = k.CreateFileW("CONIN$", 0xC0000000, 3, None, 3, 0, None)  # GENERIC_READ|WRITE, share r/w, OPEN_EXISTING
    if conin and conin != wintypes.HANDLE(-1).value:
        mode = wintypes.DWORD()
        if k.GetConsoleMode(conin, ctypes.byref(mode)):
            out["input_mode"] = mode.value
            out["processed_input"] = bool(mode.value & ENABLE_PROCESSED_INPUT)
        k.CloseHandle(conin)
    return out


def console_helper(pid: int) -> int:
    """Run in a helper started with DETACHED_PROCESS: attach to pid's console
    and describe it as JSON on stdout."""
    api = _Api()
    api.k32.FreeConsole()
    if not api.k32.AttachConsole(pid):
        code = api.err()
        out = {"attached": False, "attach_error": code,
               "how": f"AttachConsole({pid}) failed with error {code}: {ATTACH_ERRORS.get(code, 'unknown')}"}
    else:
        out = _console_here(api)
        out["processes"] = [p for p in out.get("processes", []) if p != os.getpid()]
        out["how"] = f"AttachConsole({pid}) from a helper, then " + out["how"]
        api.k32.FreeConsole()
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


# The helper imports this module from the package it is part of, by the
# package's location: an embeddable CPython's ._pth leaves no other way in.
_HELPER = ("import importlib.util as u, sys\n"
           "spec = u.spec_from_file_location('sigprobe', sys.argv[1] + '/__init__.py', "
           "submodule_search_locations=[sys.argv[1]])\n"
           "sys.modules['sigprobe'] = u.module_from_spec(spec)\n"
           "spec.loader.exec_module(sys.modules['sigprobe'])\n"
           "from sigprobe.doctor import windows\n"
           "sys.exit(windows.console_helper(int(sys.argv[2])))\n")


def _console_of(pid: int, problems: list) -> dict | None:
    try:
        r = subprocess.run([sys.executable, "-c", _HELPER, str(Path(__file__).resolve().parents[1]), str(pid)],
                           capture_output=True, text=True, timeout=30, creationflags=DETACHED_PROCESS,
                           stdin=subprocess.DEVNULL)
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as e:
        problems.append(f"console: the helper that attaches to it failed ({type(e).__name__}: {e})")
        return None


def _process_names(api: _Api, pids: list[int]) -> list[dict]:
    out = []
    for p in pids:
        h = api.k32.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, p)
        name = "?"
        if h:
            buf = ctypes.create_unicode_buffer(1024)
            n = wintypes.DWORD(1024)
            if api.k32.QueryFullProcessImageNameW(h, 0, buf, ctypes.byref(n)):
                name = _basename(buf.value)
            api.k32.CloseHandle(h)
        out.append({"pid": p, "comm": name})
    return out


def _basename(path: str) -> str:
    return path.replace("/", "\\").rsplit("\\", 1)[-1]


# ---- gather -------------------------------------------------------------------

def gather(pid: int, own: bool) -> dict:
    """Everything measurable about pid, as a JSON-ready dict; the private
    _env/_cwd keys feed doctor's Jupyter detection and are dropped after."""
    api = _Api()
    problems: list[str] = []
    facts: dict = {"pid": pid, "platform": "win32", "self": own, "source": "Win32 API (PEB, console, handles)"}
    target = _Target(api, pid, own, problems)
    try:
        image = target.image()
        facts["comm"] = _basename(image) if image else "?"
        facts["image"] = image
        facts["process"] = {"pid": pid, "ppid": getattr(target, "ppid", None)}
        params = target.params()
        env = None
        if params:
            flags = target.read(params + PARAMS_CONSOLE_FLAGS, 4)
            chandle = target.read_ptr(params + PARAMS_CONSOLE_HANDLE)
            if flags:
                value = int.from_bytes(flags, "little")
                facts["ctrl_c_ignored"] = bool(value & 1)
                facts["console_flags"] = value
            facts["console_reference"] = chandle
            cmd = target.unicode_string(params + PARAMS_COMMAND_LINE)
            facts["cmdline"] = _command_line_args(cmd) if cmd else []
            env = target.environment(params)
        else:
            facts["cmdline"] = []
        if "ctrl_c_ignored" not in facts:
            problems.append("the ignore-Ctrl+C flag: not readable (ConsoleFlags in the PEB)")
        facts["environ_readable"] = env is not None
        if env is None:
            problems.append("environ: not readable (the PEB's environment block)")
        facts["_env"] = env or {}
        facts["_cwd"] = None
        handles = []
        for var in ("JPY_INTERRUPT_EVENT", "JPY_PARENT_PID"):
            if var in (env or {}):
                handles.append(_handle_fact(api, target, var, env[var]))
        facts["handles"] = handles
    finally:
        target.close()
    console = _console_here(api) if own else _console_of(pid, problems)
    if console is not None:
        if console.get("attached"):
            console["processes"] = _process_names(api, console["processes"])
        facts["console"] = console
    facts["problems"] = problems
    return facts


# ---- conclusions: rules as data (applied by doctor.conclude) -------------------

def _console(f):
    return f.get("console") or {}


def _attached(f):
    return _console(f).get("attached")


def _others(f):
    return [p for p in _console(f).get("processes", []) if p["pid"] != f["pid"]]


def _handle(f, var):
    return next((h for h in f.get("handles", []) if h["variable"] == var), None)


def _mode(f):
    return f.get("jupyter", {}).get("interrupt_mode")


def _idle_python(f):
    return f.get("kernel_states", {}).get("idle", {}).get("python_handler")


def _event_words(h):
    kind = {True: "an auto-reset event", False: "a manual-reset event"}.get(h.get("auto_reset"), "an event")
    return f"JPY_INTERRUPT_EVENT={h['value']} is {kind} this process holds (NtQueryObject, NtQueryEvent)"


def _jupyter_why(f):
    j = f["jupyter"]
    return "; ".join(j["evidence"]) + f"; interrupt_mode from {j['interrupt_mode_source']}"


RULES = [
    ("no-console",
     lambda f: _attached(f) is False,
     lambda f: "A Ctrl+C or Ctrl+Break typed in a console will not reach this process: it has no console. Its "
               "console control handlers (SetConsoleCtrlHandler, the C runtime's signal(SIGINT)) never run; "
               "only something it waits on (such as JPY_INTERRUPT_EVENT) or TerminateProcess reaches it.",
     lambda f: _console(f)["how"]),
    ("ctrl-c-ignored",
     lambda f: f.get("ctrl_c_ignored") is True,
     lambda f: "Ctrl+C is ignored by this process: its ignore-Ctrl+C flag is set (by CREATE_NEW_PROCESS_GROUP "
               "when it was created, or SetConsoleCtrlHandler(NULL, TRUE)). No handler sees a Ctrl+C until it "
               "calls SetConsoleCtrlHandler(NULL, FALSE); Ctrl+Break still arrives; processes it starts inherit "
               "the flag.",
     lambda f: f"ConsoleFlags bit 0 is set (0x{f['console_flags']:x}, RTL_USER_PROCESS_PARAMETERS in its PEB)"),
    ("console-ctrl-c",
     lambda f: _attached(f) and f.get("ctrl_c_ignored") is False and _console(f).get("processed_input") is not False,
     lambda f: "A Ctrl+C in its console (or GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0) from a process on it) runs "
               "this process's console control handlers, SetConsoleCtrlHandler's and the C runtime's "
               "signal(SIGINT), on a new thread the system starts; if none returns TRUE the process exits.",
     lambda f: "attached to a console; ConsoleFlags bit 0 is clear"),
    ("console-shared",
     lambda f: bool(_others(f)),
     lambda f: f"A Ctrl+C typed in its console, or GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0) from any process "
               f"on it, also reaches {len(_others(f))} other process(es): {_fmt_members(_others(f))}.",
     lambda f: "GetConsoleProcessList of its console"),
    ("processed-input-off",
     lambda f: _attached(f) and _console(f).get("processed_input") is False,
     lambda f: "Its console's input has ENABLE_PROCESSED_INPUT off: a Ctrl+C typed there is read as the "
               "character 0x03 by whoever reads the input, not turned into a Ctrl+C event (a Ctrl+C sent with "
               "GenerateConsoleCtrlEvent still is one).",
     lambda f: f"GetConsoleMode(CONIN$) = 0x{_console(f)['input_mode']:x}"),
    ("jupyter-windows-signal",
     lambda f: _kernel(f) and _mode(f) in ("signal", "unknown"),
     lambda f: "This is a Jupyter kernel on Windows: an interrupt (signal mode" +
               (", jupyter_client's default" if _mode(f) == "unknown" else "") +
               ") is SetEvent on JPY_INTERRUPT_EVENT by the process that launched it, not a signal and not a "
               "console event.",
     _jupyter_why),
    ("jupyter-windows-message",
     lambda f: _kernel(f) and _mode(f) == "message",
     lambda f: "This is a Jupyter kernel on Windows in message mode: an interrupt is an interrupt_request, which "
               "ipykernel answers on Windows by logging \"Interrupt message not supported on Windows\": nothing "
               "is interrupted.",
     lambda f: _jupyter_why(f) + "; ipykernel kernelbase._send_interrupt_children"),
    ("jpy-event-valid",
     lambda f: (_handle(f, "JPY_INTERRUPT_EVENT") or {}).get("valid") is True,
     lambda f: ("ipykernel's ParentPollerWindows thread waits on it and calls _thread.interrupt_main() if "
                "Python's SIGINT handler is callable (only while a cell runs; ipykernel sets SIG_IGN between "
                "cells). That only sets Python's flag: no console control handler and no C signal() handler "
                "runs, so native code notices only by calling PyErr_CheckSignals() with the GIL released (the "
                "poller thread needs the GIL to call interrupt_main()) or by waiting on the same handle" + (" (auto-reset: one SetEvent wakes one waiter, so it competes with the poller)."
                            if _handle(f, "JPY_INTERRUPT_EVENT").get("auto_reset") else ".")
                if _kernel(f) else
                "A launcher that sets this event interrupts only code that waits on it: this process is not a "
                "Jupyter kernel, so nothing here turns it into KeyboardInterrupt unless its own code waits on "
                "the handle."),
     lambda f: _event_words(_handle(f, "JPY_INTERRUPT_EVENT"))),
    ("jpy-event-invalid",
     lambda f: (_handle(f, "JPY_INTERRUPT_EVENT") or {}).get("valid") is False,
     lambda f: "JPY_INTERRUPT_EVENT is set but names no event this process holds: the launcher's interrupt "
               "cannot reach it (the handle was not inherited: close_fds=True, or a launcher in between that does "
               "not pass handles on).",
     lambda f: f"JPY_INTERRUPT_EVENT={_handle(f, 'JPY_INTERRUPT_EVENT')['value']}: "
               f"{_handle(f, 'JPY_INTERRUPT_EVENT')['why']}"),
    ("jupyter-windows-idle",
     lambda f: _kernel(f) and _idle_python(f) == "SIG_IGN",
     lambda f: "An interrupt of an idle kernel does nothing: between cells Python's SIGINT handler is SIG_IGN, "
               "and ParentPollerWindows resets the event without calling interrupt_main().",
     lambda f: f"Python's SIGINT handler between cells: SIG_IGN "
               f"({f['kernel_states']['idle'].get('how')})"),
    ("jpy-parent",
     lambda f: (_handle(f, "JPY_PARENT_PID") or {}).get("valid") is True,
     lambda f: f"JPY_PARENT_PID is a handle to its launcher, pid {_handle(f, 'JPY_PARENT_PID')['process_pid']}"
               f" ({'running' if _handle(f, 'JPY_PARENT_PID').get('process_running') else 'exited'}): ipykernel "
               f"exits when that process ends.",
     lambda f: f"JPY_PARENT_PID={_handle(f, 'JPY_PARENT_PID')['value']} is a Process handle this process holds"),
]


# ---- the Windows sections of the report ------------------------------------------

def sections(facts: dict) -> list[str]:
    lines = ["", "Process"]
    p = facts.get("process", {})
    rows = [("pid / ppid", f"{p.get('pid')} / {p.get('ppid', '?')}"), ("image", facts.get("image") or "?")]
    if "ctrl_c_ignored" in facts:
        rows.append(("ignore Ctrl+C", f"{'yes' if facts['ctrl_c_ignored'] else 'no'} (ConsoleFlags "
                                      f"0x{facts['console_flags']:x} in its PEB)"))
    lines += _kv(rows)
    c = facts.get("console")
    lines += ["", "Console"]
    if c is None:
        lines.append("  not read (see below)")
    elif not c["attached"]:
        lines.append(f"  none ({c['how']})")
    else:
        rows = [("attached", "yes"), ("window", "yes" if c.get("window") else "no (GetConsoleWindow is NULL)"),
                ("processes on it", _fmt_members(c["processes"], 8) or "-")]
        if "input_mode" in c:
            rows.append(("input mode", f"0x{c['input_mode']:x} (ENABLE_PROCESSED_INPUT "
                                       f"{'on' if c['processed_input'] else 'off'})"))
        rows.append(("read with", c["how"]))
        lines += _kv(rows)
    handles = facts.get("handles", [])
    if handles:
        lines += ["", "Handles named by the environment"]
        for h in handles:
            if h.get("valid"):
                extra = ""
                if h.get("type") == "Event":
                    extra = (f", {'auto' if h.get('auto_reset') else 'manual'}-reset, "
                             f"{'signalled' if h.get('signalled_now') else 'not signalled'} now")
                elif h.get("type") == "Process":
                    extra = f", pid {h['process_pid']}, {'running' if h.get('process_running') else 'exited'}"
                lines.append(f"  {h['variable']}={h['value']}: valid, a {h['type']} handle{extra}")
            else:
                lines.append(f"  {h['variable']}={h['value']}: "
                             f"{'not checked' if h.get('valid') is None else 'INVALID'} ({h['why']})")
    return lines
