"""`sigprobe check --platform windows-wine`: the user's code in the Windows
CPython under Wine (runners/winpython.py), interrupted by Ctrl+C on a console
of its own (remote/console_host.py) and in that Python's own Windows kernels
the way jupyter_client does there (SetEvent on the kernel's
JPY_INTERRUPT_EVENT in signal mode; an interrupt_request, which ipykernel on
Windows only logs, in message mode), the uninterrupted run under Wine too;
and the built-in subjects as cells of `sigprobe run --platform windows-wine
--only subjects`. Code whose answer is known by construction: a pure-Python
loop (--call) is handled by Ctrl+C and in signal mode and lost in message
mode; time.sleep is handled by Ctrl+C (Python's SIGINT handler on Windows
sets the event the sleep waits on) and deferred in the kernel (whose poller
thread calls interrupt_main(), which sets only the flag); a native call
holding the GIL (the ctypes.PyDLL subject: kernel32 Sleep(2000)) is deferred
with the GIL held about its 2 s in the kernel and deferred by Ctrl+C; code
that swallows KeyboardInterrupt (--script) is hung on the console and in the
kernel, ended within its deadline with nothing left running; bad input is
one line.

The Wine-bound work is one WINE_JOBS entry (conftest.winpy: beside the other
modules' once the Windows side is ready, in a Wine prefix of its own); the
tests judge its results."""
import json
import subprocess
import sys
import time

import pytest

from conftest import wine_job
from sigprobe.cli import build_parser
from sigprobe.errors import BadInput
from sigprobe.runners import winpython

BUSY = "import time\n\ndef spin():\n    t0 = time.perf_counter()\n    while time.perf_counter() - t0 < 3:\n        pass\n"
# Swallows every KeyboardInterrupt and loops, writing a heartbeat (the time) to a file as it goes.
STUBBORN = ("import time\nwhile True:\n    try:\n        open(BEAT, 'w').write(repr(time.time()))\n"
            "        time.sleep(0.05)\n    except KeyboardInterrupt:\n        pass\n")
TIMEOUT_S = 5


def _check(build, env, argv, cwd=None) -> dict:
    """`sigprobe check ARGV --platform windows-wine --json` as the command runs
    it, inside the session's wineserver: the document, or the BadInput's line;
    and the wall time."""
    from sigprobe.commands import check
    args = build_parser(["check"]).parse_args(["check", "--platform", "windows-wine", "--json", *argv])
    t0 = time.perf_counter()
    try:
        out = {"doc": check.check_under_wine(args, build, env, cwd)}
    except BadInput as e:
        out = {"bad": str(e)}
    out["wall_s"] = time.perf_counter() - t0
    return out


# Built-in subjects as cells of `sigprobe run --platform windows-wine --only subjects`, with their known
# verdicts under Wine; numpy is not in the project's Windows CPython, cysignals is POSIX only.
SUBJECT_VERDICTS = {
    "windows-wine/console/code:time.sleep/ctrl-c": "handled",
    "windows-wine/console/code:ctypes.PyDLL/ctrl-c": "deferred",
    "windows-wine/jupyter/code:time.sleep/kernel-interrupt": "deferred",
    "windows-wine/jupyter/code:busy-loop/kernel-interrupt": "handled",
    "windows-wine/jupyter/code:ctypes.PyDLL/kernel-interrupt": "deferred",
    "windows-wine/jupyter/code:numpy.matmul/kernel-interrupt": "unsupported",
    "windows-wine/jupyter/code:cysignals/kernel-interrupt": "unsupported",
}


def _subject_cells(build, env):
    from sigprobe.runners import wine
    cells = {c.id: c for c in wine.catalog(build, env) if c.kind == "subject"}
    got = {}
    t0 = time.perf_counter()
    versions = wine.run_subject_cells(build, env, [(cells[i], 0) for i in SUBJECT_VERDICTS],
                                      lambda c, o: got.__setitem__(c.id, o))
    return {"cells": sorted(cells), "outcomes": got, "versions": versions, "wall_s": time.perf_counter() - t0}


def _checks(build, env, pyext, tmp_path_factory) -> dict:
    """The checks, then the subjects' cells, one after the other (each starts
    its own kernels: side by side with each other and the other modules' Wine
    jobs on a loaded machine, their kernels overran the start timeout):
    {name: _check's result, "subjects": _subject_cells'}."""
    out = {"syntax_error": _check(build, env, ["-c", "x = ("])}
    d = tmp_path_factory.mktemp("check-call")
    (d / "spinning.py").write_text(BUSY)
    out["busy_call"] = _check(build, env, ["--call", "spinning:spin", "--after", "300"], cwd=str(d))
    script = tmp_path_factory.mktemp("check-script") / "stubborn.py"
    script.write_text("BEAT = __file__ + '.beat'\n" + STUBBORN)
    beat = script.with_name("stubborn.py.beat")
    stubborn = out["stubborn"] = _check(build, env, ["--host", "console", "--host", "jupyter", "--after", "300",
                                                     "--timeout", str(TIMEOUT_S), "--script", str(script)])
    # Nothing left running: the heartbeat has stopped (read 3 s apart).
    stubborn["beat"] = [beat.read_text() if beat.exists() else None]
    time.sleep(3)
    stubborn["beat"].append(beat.read_text() if beat.exists() else None)
    out["subjects"] = _subject_cells(build, env)
    return out


# Started as soon as the Windows side is ready (conftest.winpy), beside the other modules' Wine jobs.
WINE_JOBS = {"checks": _checks}


def by_host(doc) -> dict:
    return {c["host"]: c for c in doc["cells"]}


def test_a_pure_python_loop_is_handled_by_the_event_and_lost_by_a_message(request):
    job = wine_job(request, "checks")["busy_call"]
    assert "doc" in job, job
    doc = job["doc"]
    assert doc["platform"] == "windows-wine"
    assert doc["machine"]["python"] == "3.11.9" and doc["machine"]["ipykernel"] == "7.4.0", doc["machine"]
    assert doc["machine"]["python_executable"].endswith("\\winpython\\python.exe")
    assert doc["machine"]["wine"].startswith("wine-"), doc["machine"]
    assert doc["subject"]["kind"] == "call" and doc["subject"]["code"] == "spinning:spin"
    # Its own time, under Wine: the 3 s loop.
    assert 2900 <= doc["subject"]["uninterrupted_ms"] <= 4500, doc["subject"]
    cells = by_host(doc)
    assert list(cells) == ["console", "jupyter", "jupyter-message"]
    console, signal_mode, message_mode = cells["console"], cells["jupyter"], cells["jupyter-message"]
    # Ctrl+C on the code's own console, sent and stamped by the console host on the subject's clock.
    assert console["id"] == "windows-wine/console/code:spin/ctrl-c", console
    assert console["verdict"] == "handled", json.dumps(console)
    run = console["runs"][0]
    assert run["check"]["raised_at"]["function"] == "spin", run
    # --after 300 from the code's start event, stamped on the Windows side on the code's clock: measured from
    # the code's start, which comes just after that event is sent (299.7 once); a slow machine may be later.
    assert 290 <= run["check"]["interrupted_at_ms"] < 2000, run
    assert 0 < run["check"]["ki_latency_ms"] < 1000, run
    assert signal_mode["id"] == "windows-wine/jupyter/code:spin/kernel-interrupt"
    assert signal_mode["verdict"] == "handled", json.dumps(signal_mode)
    run = signal_mode["runs"][0]
    assert run["check"]["raised_at"]["function"] == "spin", run  # inside the call: the loop's frame
    assert 0 < run["check"]["ki_latency_ms"] < 2000
    # ipykernel on Windows only logs an interrupt_request (kernelbase.py, _send_interrupt_children).
    assert message_mode["id"] == "windows-wine/jupyter-message/code:spin/kernel-interrupt"
    assert message_mode["verdict"] == "lost", json.dumps(message_mode)
    assert message_mode["runs"][0]["check"]["kernel_said"].endswith("Interrupt message not supported on Windows")
    assert message_mode["conclusion"].startswith("never: ipykernel on Windows does nothing for an interrupt_request")
    print(f"\ncheck --call (3 s loop), the three Windows hosts, --repeat 1: {job['wall_s']:.1f} s "
          f"(the code's own time {doc['subject']['uninterrupted_ms']:.0f} ms)")


def test_a_native_call_holding_the_gil_is_deferred(request):
    """The ctypes.PyDLL subject in its Windows form: kernel32 Sleep(2000) with the GIL held."""
    job = wine_job(request, "checks")["subjects"]
    cell = job["outcomes"]["windows-wine/jupyter/code:ctypes.PyDLL/kernel-interrupt"]
    assert cell["verdict"] == "deferred", json.dumps(cell)
    c = cell["check"]
    assert 1500 <= c["gil_held_ms"] <= 2600, c  # the 2 s Sleep, GIL held across the interrupt at 300 ms


def test_code_that_swallows_the_interrupt_is_hung_and_ended(request):
    job = wine_job(request, "checks")["stubborn"]
    assert "doc" in job, job
    doc = job["doc"]
    console, cell = doc["cells"]
    assert console["id"] == "windows-wine/console/code:stubborn/ctrl-c", console
    assert cell["id"] == "windows-wine/jupyter/code:stubborn/kernel-interrupt" and doc["subject"]["kind"] == "script"
    for c in (console, cell):
        assert c["verdict"] == "hung", json.dumps(c)
        assert c["runs"][0]["reason"].endswith("sigprobe ended it"), c
    assert doc["subject"]["uninterrupted_ms"] is None  # the uninterrupted run did not end either: ended at the timeout
    # Within its deadline: the kernel's start (at most 180 s under Wine) and the timeout, not more.
    assert job["wall_s"] < 240, job["wall_s"]
    # Nothing left running: the heartbeat it wrote every 50 ms has stopped.
    assert job["beat"][0] is not None and job["beat"][0] == job["beat"][1], job["beat"]


def test_a_syntax_error_is_one_line_before_any_kernel(request):
    job = wine_job(request, "checks")["syntax_error"]
    assert job.get("bad") == "the code cannot run: SyntaxError: '(' was never closed (line 1)", job
    assert job["wall_s"] < 60, job  # the kernel drivers were told to stop before any kernel started


@pytest.mark.parametrize("argv, line", [
    (["--host", "python-tty", "-c", "pass"], "sigprobe: --host python-tty: a POSIX host, not one of --platform "
                                             "windows-wine's (console, jupyter, jupyter-message: Ctrl+C on the "
                                             "code's own console, and the Windows kernel interrupted by its event "
                                             "or by a message)"),
    (["--subject", "cysignals"], "sigprobe: --subject cysignals: POSIX only (a C extension looping in sig_on() … "
                                 "sig_off() with sig_check() (cysignals)), not run under --platform windows-wine"),
    (["--python", sys.executable, "-c", "pass"], "sigprobe: --python goes with the native platform: under --platform "
                                                 "windows-wine the interpreter is the project's Windows CPython "
                                                 "(build-win/winpython)"),
])
def test_bad_input_is_one_line(argv, line):
    """Refused before anything is built or started under Wine."""
    r = subprocess.run([sys.executable, "-m", "sigprobe", "check", "--platform", "windows-wine", *argv],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 2 and r.stdout == "" and r.stderr == line + "\n", (r.returncode, r.stdout, r.stderr)


def test_the_built_in_subjects_in_the_windows_kernel(request):
    """The subjects' cells under Wine: each that exists on Windows in its
    Windows form (ctypes.PyDLL: kernel32 Sleep(2000), the GIL held), the
    others unsupported saying why; the Windows hosts only."""
    job = wine_job(request, "checks")["subjects"]
    cells = job["cells"]
    assert {c.split("/")[1] for c in cells} == {"console", "jupyter", "jupyter-message"}, cells
    assert len(cells) == 3 * 11
    got = job["outcomes"]
    for cid, want in SUBJECT_VERDICTS.items():
        assert got[cid]["verdict"] == want, json.dumps(got[cid])
    assert got["windows-wine/jupyter/code:cysignals/kernel-interrupt"]["reason"].startswith("POSIX only: ")
    numpy = got["windows-wine/jupyter/code:numpy.matmul/kernel-interrupt"]["reason"]
    assert numpy.startswith("numpy is not installed for Z:\\") and numpy.endswith(
        "(requirements-win.txt, the pinned Jupyter stack of the project's Windows CPython, has no numpy)"), numpy
    pydll = got["windows-wine/jupyter/code:ctypes.PyDLL/kernel-interrupt"]
    assert 1500 <= pydll["check"]["gil_held_ms"] <= 2600, json.dumps(pydll)
    assert job["versions"]["python"] == "3.11.9" and job["versions"]["ipykernel"] == "7.4.0", job["versions"]
    print(f"\n{len(SUBJECT_VERDICTS)} subject cells under Wine, one run each: {job['wall_s']:.1f} s")


def test_subject_cells_by_platform():
    """On Windows the subjects run on the console and in the kernels; on Linux under the four POSIX hosts."""
    from sigprobe.check.matrix import subject_cells
    assert {c.host for c in subject_cells("windows-wine")} == {"console", "jupyter", "jupyter-message"}
    assert {c.host for c in subject_cells("linux")} == {"python-tty", "python-no-tty", "jupyter", "jupyter-message"}
    assert all(c.kind == "subject" for c in subject_cells("windows-wine"))


def test_the_loopback_channel_takes_only_its_runs_connection():
    """The report channel on loopback TCP (Windows: no AF_UNIX under Wine):
    a connection without the run's token, or with a wrong one, is closed
    unread, and its events are not the run's; then the run's own is taken."""
    import socket

    from sigprobe.remote.channel import Channel
    from sigprobe.remote.subject import socket_emitter
    chan = Channel()
    try:
        _, host, port, token = chan.address.split(":", 3)
        assert host == "127.0.0.1" and len(token) == 32
        for first in (b"", ("0" * 32).encode()):
            intruder = socket.create_connection((host, int(port)))
            intruder.sendall(first + b"\n" + b'{"ev": "end", "outcome": "injected"}\n')
            chan.pump(2)
            assert chan.conn is None and chan.events == []
            intruder.close()
        assert chan.refused == 2
        emit = socket_emitter(chan.address)
        emit({"ev": "start", "t_ns": 1})
        emit.close()
        while not chan.eof:
            chan.pump(1)
        assert chan.events == [{"ev": "start", "t_ns": 1}]
    finally:
        chan.close()


def test_what_the_console_host_says_is_read_strictly():
    """Its stamp of the Ctrl+C, its reason for not sending one, or one line
    naming what it said that was not understood (never a traceback)."""
    from sigprobe.check.winhost import _heard
    seen: dict = {}
    _heard(["ready 4242", "ok 123456789"], seen)
    assert seen == {"t_deliv": 123456789}
    seen = {}
    _heard(["ready 4242", "ended"], seen)
    assert seen == {}  # the code ended before the moment: nothing sent, the verdict says so
    seen = {}
    _heard(["error GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0) failed: Invalid handle (error 6)"], seen)
    assert seen == {"error": "the console's Ctrl+C could not be sent: GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0) "
                             "failed: Invalid handle (error 6)"}
    seen = {}
    _heard(["ok soon"], seen)
    assert seen == {"error": "a malformed line from the console host: 'ok soon'"}
