"""`%%sigprobe check` (and `%sigprobe check EXPR`): sigprobe check for a cell,
in the user's own kernel. The cell's code runs twice in this kernel's
namespace: once uninterrupted (to know when it ends on its own), then once
interrupted --after ms into it the way this kernel's manager would (signal
mode: SIGINT to its process group from a helper process, or on Windows
SetEvent on its JPY_INTERRUPT_EVENT, as jupyter_client does there; message
mode: an interrupt_request on its own control channel from a helper),
--repeat times. The report is sigprobe check's.

What it guarantees: its own interrupt never leaks into the next cell (the
helper has delivered, and a late KeyboardInterrupt is caught, before it
returns); a real interrupt by the user stops it and propagates; the
kernel's SIGINT handlers, signal mask and threads are as before (checked,
and restored if the code changed them)."""
from __future__ import annotations

import argparse
import shlex
import sys
import time

from .. import check
from ..check.verdict import ending
from ..commands import options
from ..remote import subject as harness
from . import kernel as ipkernel


class UsageProblem(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageProblem(f"%sigprobe check: {message}")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="%%sigprobe check", add_help=False,
                description="Run this cell's code in this kernel, interrupt it --after ms into it the way this "
                            "kernel's manager would, and say whether, where and why not. The code runs 1 + N "
                            "times (once uninterrupted, to know when it ends on its own).")
    p.add_argument("--after", type=options.bounded_int(600_000), default=1000, metavar="MS",
                   help="interrupt this many ms into the code (default 1000)")
    p.add_argument("--mode", choices=("signal", "message"), default="signal",
                   help="interrupt as a signal-mode manager does (the default, what Jupyter does: SIGINT to the "
                        "process group on POSIX, SetEvent on JPY_INTERRUPT_EVENT on Windows) or a message-mode one "
                        "(interrupt_request on the control channel; POSIX kernels)")
    p.add_argument("--repeat", type=options.bounded_int(100), default=1, metavar="N",
                   help="interrupted runs (default 1)")
    p.add_argument("--name", default="cell", help="the subject's name in cell ids (default: cell)")
    p.add_argument("--json", action="store_true", help="print the results document")
    p.add_argument("--out", metavar="FILE", help="also write the results document here")
    p.add_argument("-h", "--help", action="store_true", help="show this help")
    return p


def parse(line: str, cell: str | None):
    """(args, code): the cell's body, or for the line form, the rest of the line."""
    try:
        words = shlex.split(line)
    except ValueError as e:
        raise UsageProblem(f"%sigprobe check: {e}") from None
    p = parser()
    if cell is not None:
        args = p.parse_args(words)
        return args, cell
    args, rest = p.parse_known_args(words)
    # The line form: everything after the options is the expression, as typed.
    return args, _after_options(line, rest)


def _after_options(line: str, rest: list[str]) -> str:
    """The expression: the line as typed after the options' words (shlex
    would take the quotes out of the code itself)."""
    if not rest:
        return ""
    if rest[0].startswith("-"):
        raise UsageProblem(f"%sigprobe check: unknown option {rest[0]} (see %sigprobe check --help)")
    words = shlex.split(line)
    n = len(words) - len(rest)
    if words[n:] != rest:
        raise UsageProblem("%sigprobe check: the options go before the expression (see %sigprobe check --help)")
    lex = shlex.shlex(line, posix=True)
    lex.whitespace_split = True
    for _ in range(n):
        lex.get_token()
    return line[lex.instream.tell():].strip()


def _connection_file() -> str:
    from ipykernel import get_connection_file
    return get_connection_file()


def run(shell, code: str, after_ms: int, mode: str, repeat: int, name: str) -> dict:
    if not code.strip():
        raise UsageProblem("%sigprobe check: no code (%%sigprobe check runs the cell's body; "
                           "%sigprobe check EXPR the rest of the line)")
    if sys.platform == "win32" and mode == "message":
        raise UsageProblem("%sigprobe check --mode message: on Windows this kernel is interrupted as jupyter_client "
                           "does there (SetEvent on JPY_INTERRUPT_EVENT, the default --mode signal); an "
                           "interrupt_request does nothing in a Windows kernel (results/README.md)")
    subject = check.Subject(name, "code", code=code)
    spec = subject.spec()
    ns = shell.user_ns
    host = "jupyter" if mode == "signal" else "jupyter-message"
    before = ipkernel.kernel_state()

    # 1. uninterrupted
    got: list = []
    harness.measure(spec, got.append, ns, harness.KERNEL_LATE_NS)
    facts0 = next((e for e in got if e["ev"] == "end"), {})
    if facts0.get("outcome") == "bad-code":
        raise UsageProblem(f"%sigprobe check: the code cannot run: {facts0.get('error')}")
    if facts0.get("outcome") == "keyboard-interrupt":
        raise KeyboardInterrupt  # the user's own interrupt, before sigprobe sent any
    base = {"wall_ns": facts0["t_end"] - facts0["t_start"], "cpu_ns": facts0.get("cpu_ns"),
            **ending(facts0)}

    # 2. interrupted, by a helper outside this process
    runs = []
    for _ in range(repeat):
        if sys.platform == "win32":
            out, helper, report, cleanup = ipkernel._windows_sender(after_ms)
            if helper is None:
                raise UsageProblem(f"%sigprobe check: {out['unsupported']}")
        else:
            out, helper, report, cleanup = ipkernel._posix_sender(
                after_ms, _connection_file() if mode == "message" else None)
        try:
            local: list = []
            emit_report = _report_emitter(report)

            def emit(obj, local=local, emit_report=emit_report):
                local.append(obj)
                emit_report(obj)
            harness.measure(spec, emit, ns, harness.KERNEL_LATE_NS)
            emit_report.close()  # the helper says "closed" once it has everything
            events = []
            try:
                events = helper.until_closed(max(5.0, after_ms / 1000 + 5))
            except KeyboardInterrupt:
                pass
            delivered = next((e for e in events if e.get("ev") == "delivered"), None)
            facts = next((e for e in local if e["ev"] == "end"), None)
            if facts and ipkernel.users_interrupt(facts.get("t_ki"), events):
                raise KeyboardInterrupt  # the user's, not sigprobe's: it stops the check
            run = {"facts": facts, "t_deliv": delivered["t_ns"] if delivered else None}
            if delivered is None:
                run["error"] = next((e.get("reason") for e in events if e.get("ev") == "error"),
                                    "the helper did not interrupt")
            runs.append(run)
        finally:
            _settle()
            helper.stop()
            cleanup()
    after = ipkernel.kernel_state()
    state = {"unchanged": before == after}
    if before != after:
        state["diff"] = {k: [repr(before[k]), repr(after[k])] for k in before if before[k] != after[k]}
        import signal
        signal.signal(signal.SIGINT, before["python_handler"])
        state["restored"] = ipkernel.kernel_state() == before
    import platform as _platform
    machine = {"python": _platform.python_version(), "python_executable": sys.executable,
               "ipykernel": _version("ipykernel"), "jupyter_client": _version("jupyter_client")}
    settings = {"after_ms": after_ms, "repeat": repeat, "mode": mode, "in_kernel": True}
    doc = check.build_document(subject, {host: runs}, base, settings, machine)
    doc["kernel_state"] = state
    return doc


def _report_emitter(report: str):
    """Where the run's events go to the helper, written by the main thread
    itself (ipykernel's IO thread cannot run while the code holds the GIL):
    "unix:PATH", the helper's Unix socket (POSIX); or the write end of the
    pipe the helper reads, as a handle number (Windows: its own duplicate,
    so that closing it leaves the sender's cleanup alone, and a `done` event
    at the end, which the helper takes as the end of the run)."""
    if report.startswith("unix:"):
        return harness.socket_emitter(report[len("unix:"):])
    import _winapi
    import msvcrt
    import os
    me = _winapi.GetCurrentProcess()
    fd = msvcrt.open_osfhandle(_winapi.DuplicateHandle(me, int(report), me, 0, False,
                                                       _winapi.DUPLICATE_SAME_ACCESS), os.O_WRONLY)
    emit = harness.fd_emitter(fd)

    def close():
        try:
            emit({"ev": "done"})
        finally:
            os.close(fd)
    emit.close = close
    return emit


def _settle():
    """A KeyboardInterrupt still on its way (message mode: the control thread
    raises it once it has the GIL) lands here, not in the user's next cell."""
    end = time.monotonic() + 0.2
    while time.monotonic() < end:
        try:
            time.sleep(0.01)
        except KeyboardInterrupt:
            pass


def _version(mod: str):
    try:
        return __import__(mod).__version__
    except Exception:
        return None


def magic(shell, line: str, cell: str | None):
    """The magic's entry: the report (or the document with --json)."""
    import json
    from pathlib import Path

    from ..results import document
    args, code = parse(line, cell)
    if args.help:
        print(parser().format_help())
        return None
    if not hasattr(shell, "kernel"):
        raise UsageProblem("%sigprobe check interrupts the Jupyter kernel it runs in, and this IPython is not one")
    doc = run(shell, code, args.after, args.mode, args.repeat, args.name)
    if args.out:
        document.write_atomically(Path(args.out), document.dumps(doc))
    if args.json:
        print(json.dumps(doc, indent=2))
        return None
    return magic_report(doc)


def magic_report(doc):
    from .kernel import Report
    rows = [{"host": c["host"], "verdict": c["verdict"], "conclusion": c["conclusion"]} for c in doc["cells"]]
    text = check.text(doc)
    if not doc["kernel_state"]["unchanged"]:
        text += (f"\nthe code changed this kernel's interrupt handling: {doc['kernel_state']['diff']}; "
                 f"{'put back' if doc['kernel_state'].get('restored') else 'could not put it back'}\n")
    return Report(text, rows, f"sigprobe check: {doc['subject']['name']}")
