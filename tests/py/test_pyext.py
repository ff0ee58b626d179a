"""The Python extension probe (probes/pyext) in a plain `python -c` process.

Each case starts the interpreter running this test (sys.executable) in its own
session, waits for the probe's "ready" on the report channel, sends SIGINT
with os.kill() and checks what the probe reported and what Python did.

The modules come from $SIGPROBE_PYEXT_DIR; when it is unset they are built
here, for sys.executable, with the standalone CMake build of probes/pyext.
"""
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 20 * float(os.environ.get("SIGPROBE_TIMEOUT_MULTIPLIER", "1"))
LOOP_MS = 3000  # long enough that a loop-end can never be mistaken for a reaction
HANDLER_STRATEGIES = ["c-handler-import", "c-handler-per-call", "self-pipe", "signalfd-thread"]
PER_CALL_STRATEGIES = ["c-handler-per-call", "self-pipe", "signalfd-thread", "check-signals", "none"]


@pytest.fixture(scope="session")
def pyext_dir(tmp_path_factory):
    given = os.environ.get("SIGPROBE_PYEXT_DIR")
    if given:
        return os.path.abspath(given)
    cmake = shutil.which("cmake")
    assert cmake, "SIGPROBE_PYEXT_DIR is unset and cmake is not on PATH to build the extension probe"
    build = tmp_path_factory.mktemp("pyext-build")
    for cmd in ([cmake, "-S", str(REPO / "probes/pyext"), "-B", str(build), f"-DPython3_EXECUTABLE={sys.executable}"],
                [cmake, "--build", str(build)]):
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return str(build / "pyext")


# ---- the child process ----

PRELUDE = """
import json, os, signal, sys, time
from sigprobe.remote.pyext_loader import load_pyext
m = load_pyext({pyext_dir!r})

def state():
    return {{"os": m.sigint_state(),
            "python": repr(signal.getsignal(signal.SIGINT)),
            "mask": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))}}

out = {{}}
"""

# One run; then room for a deferred KeyboardInterrupt to surface, then a
# self-sent SIGINT to show which handler is in place afterwards.
ONE_RUN = """
{setup}
out["before"] = state()
r = None
try:
    r = m.run({strategy!r}, {loop_ms}, nogil={nogil})
    out["result"] = r
    time.sleep(0.3)
except KeyboardInterrupt:
    out["exception"] = "KeyboardInterrupt"
    out["t_exception_ns"] = time.monotonic_ns()
    out["result_assigned"] = r is not None
out["after"] = state()
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)
    out["self_kill"] = "no exception"
except KeyboardInterrupt:
    out["self_kill"] = "KeyboardInterrupt"
print(json.dumps(out), flush=True)
"""


def start(pyext_dir, body, report, **env):
    code = PRELUDE.format(pyext_dir=pyext_dir) + textwrap.dedent(body)
    child_env = dict(os.environ, SIGPROBE_REPORT=str(report), **env)
    return subprocess.Popen([sys.executable, "-c", code], env=child_env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc):
    try:
        out, err = proc.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the probe process hung")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    return json.loads(out.strip().splitlines()[-1])


def events(report):
    path = Path(report)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(report, ev, count=1):
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        found = [e for e in events(report) if e["ev"] == ev]
        if len(found) >= count:
            return found[count - 1]
        time.sleep(0.002)
    pytest.fail(f"no {ev!r} #{count} on the report channel; got {events(report)}")


class Case:
    """One run of one strategy under kill -INT, as the child saw it."""

    def __init__(self, pyext_dir, tmp_dir, strategy, nogil, setup=""):
        self.report = Path(tmp_dir) / f"{strategy}-{nogil}.jsonl"
        proc = start(pyext_dir, ONE_RUN.format(setup=setup, strategy=strategy, loop_ms=LOOP_MS, nogil=nogil),
                     self.report)
        self.ready = wait_for(self.report, "ready")
        self.t_kill_ns = time.monotonic_ns()
        os.kill(proc.pid, signal.SIGINT)
        self.out = finish(proc)
        self.events = events(self.report)
        self.fired = [e for e in self.events if e["ev"] == "fired"]
        self.done = [e for e in self.events if e["ev"] == "done"]


@pytest.fixture(scope="session")
def case(pyext_dir, tmp_path_factory):
    cache = {}
    tmp = tmp_path_factory.mktemp("cases")

    def get(strategy, nogil):
        if (strategy, nogil) not in cache:
            cache[strategy, nogil] = Case(pyext_dir, tmp, strategy, nogil)
        return cache[strategy, nogil]

    return get


NOGIL = pytest.mark.parametrize("nogil", [False, True], ids=["gil", "nogil"])


# ---- the build ----

def test_module_was_built_for_this_interpreter(pyext_dir):
    code = ("import sys, sysconfig; from sigprobe.remote.pyext_loader import load_pyext; "
            "m, i = load_pyext(sys.argv[1]), load_pyext(sys.argv[1], 'sigprobe_pyext_import'); "
            "print(m.HEADERS_VERSION, i.HEADERS_VERSION, m.__file__, sysconfig.get_config_var('EXT_SUFFIX'))")
    done = subprocess.run([sys.executable, "-c", code, pyext_dir], capture_output=True, text=True, check=True)
    headers, headers_import, path, suffix = done.stdout.split()
    assert headers == headers_import == platform.python_version()
    assert os.path.dirname(os.path.realpath(path)) == os.path.realpath(pyext_dir) and path.endswith(suffix)


# ---- strategies whose own handler takes the signal ----

@pytest.mark.parametrize("strategy", HANDLER_STRATEGIES)
@NOGIL
def test_handler_fires_once_with_the_sender(case, strategy, nogil):
    c = case(strategy, nogil)
    assert [e["handler"] for e in c.fired] == [strategy]
    fired = c.fired[0]
    assert (fired["sig"], fired["si_code"], fired["si_pid"]) == ("SIGINT", "SI_USER", os.getpid())
    assert fired["thread"] == ("other" if strategy == "signalfd-thread" else "main")


@pytest.mark.parametrize("strategy", HANDLER_STRATEGIES)
@NOGIL
def test_handler_stops_the_loop_without_keyboard_interrupt(case, strategy, nogil):
    c = case(strategy, nogil)
    assert [d["stopped_by"] for d in c.done] == [strategy]
    assert "exception" not in c.out
    assert c.out["result"]["stopped_by"] == strategy
    assert c.out["result"]["fired"] == [strategy]
    assert c.done[0]["t_ns"] - c.ready["t_ns"] < LOOP_MS * 1_000_000


# ---- check-signals, and recommended (sigprobe/interruptible.h) ----

CHECKING = pytest.mark.parametrize("strategy", ["check-signals", "recommended"])


@CHECKING
@NOGIL
def test_check_signals_reports_fired_then_done(case, strategy, nogil):
    c = case(strategy, nogil)
    assert [e["handler"] for e in c.fired] == [strategy]
    assert c.fired[0]["thread"] == "main" and "si_code" not in c.fired[0]
    assert [d["stopped_by"] for d in c.done] == [strategy]
    assert c.fired[0]["t_ns"] <= c.done[0]["t_ns"]


@CHECKING
@NOGIL
def test_check_signals_propagates_keyboard_interrupt_out_of_run(case, strategy, nogil):
    c = case(strategy, nogil)
    assert c.out.get("exception") == "KeyboardInterrupt"
    assert c.out["result_assigned"] is False
    assert c.out["t_exception_ns"] < c.ready["t_ns"] + LOOP_MS * 1_000_000


# ---- none: Python's own handler ----

@NOGIL
def test_none_does_not_notice_and_runs_to_loop_end(case, nogil):
    c = case("none", nogil)
    assert c.fired == []
    assert [d["stopped_by"] for d in c.done] == ["loop-end"]
    assert c.done[0]["t_ns"] - c.ready["t_ns"] >= LOOP_MS * 1_000_000


@NOGIL
def test_none_keyboard_interrupt_comes_after_run_returned(case, nogil):
    c = case("none", nogil)
    assert c.out.get("exception") == "KeyboardInterrupt"
    assert c.out["t_exception_ns"] > c.done[0]["t_ns"]
    # CPython checks its pending-signal flag before the result is stored.
    assert c.out["result_assigned"] is False


# ---- what every run leaves behind ----

@pytest.mark.parametrize("strategy", PER_CALL_STRATEGIES)
@NOGIL
def test_handler_and_mask_are_restored_after_the_run(case, strategy, nogil):
    c = case(strategy, nogil)
    assert c.out["after"] == c.out["before"]
    assert c.out["before"]["os"]["owner"] == "python"
    assert c.out["before"]["os"]["blocked"] is False


@pytest.mark.parametrize("strategy", PER_CALL_STRATEGIES)
@NOGIL
def test_python_handler_works_again_after_the_run(case, strategy, nogil):
    assert case(strategy, nogil).out["self_kill"] == "KeyboardInterrupt"


@NOGIL
def test_import_handler_stays_and_python_cannot_see_it(case, nogil):
    c = case("c-handler-import", nogil)
    assert c.ready["python_handler"] == "default_int_handler"
    assert (c.ready["disposition_on_entry"], c.ready["entry_handler"]) == ("caught", "sigprobe")
    assert c.out["after"]["os"]["owner"] == "sigprobe"
    assert c.out["self_kill"] == "no exception"


@pytest.mark.parametrize("strategy", PER_CALL_STRATEGIES)
def test_ready_names_python_default_int_handler(case, strategy):
    c = case(strategy, False)
    assert c.ready["strategies"] == [strategy]
    assert c.ready["python_handler"] == "default_int_handler"
    assert (c.ready["disposition_on_entry"], c.ready["entry_handler"]) == ("caught", "python")
    assert c.ready["pid"] == c.ready["sid"]  # its own session


# ---- restoring on errors ----

@pytest.mark.parametrize("strategy", ["c-handler-per-call", "self-pipe", "signalfd-thread"])
def test_failed_install_raises_oserror_and_restores(pyext_dir, tmp_path, strategy):
    # A first run opens what the runtime keeps (its wake pipe); then every
    # descriptor but one is used up: the per-run report file still opens, and
    # the strategy's own pipe2()/signalfd() fails.
    body = f"""
    import resource
    m.run("none", 0)
    out["before"] = state()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    held = []
    try:
        while True:
            held.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        os.close(held.pop())
    try:
        m.run({strategy!r}, 100)
        out["error"] = None
    except OSError as e:
        out["error"] = str(e)
    for fd in held:
        os.close(fd)
    out["after"] = state()
    print(json.dumps(out), flush=True)
    """
    report = tmp_path / "r.jsonl"
    out = finish(start(pyext_dir, body, report))
    if strategy == "c-handler-per-call":
        # It needs no descriptor: the run succeeds, and still restores.
        assert out["error"] is None
    else:
        assert out["error"] and ("Too many open files" in out["error"])
        assert events(report)[-1]["ev"] == "error"
    assert out["after"] == out["before"]


def test_missing_report_channel_raises_oserror_and_changes_nothing(pyext_dir, tmp_path):
    body = """
    os.environ.pop("SIGPROBE_REPORT")
    out["before"] = state()
    try:
        m.run("signalfd-thread", 100)
    except OSError as e:
        out["error"] = str(e)
    out["after"] = state()
    print(json.dumps(out), flush=True)
    """
    out = finish(start(pyext_dir, body, tmp_path / "unused"))
    assert "SIGPROBE_REPORT" in out["error"]
    assert out["after"] == out["before"]


# ---- Windows-only strategies ----

@pytest.mark.parametrize("strategy", ["event-thread", "console-ctrl"])
def test_windows_strategy_is_unsupported_on_posix(pyext_dir, tmp_path, strategy):
    body = f"""
    out["result"] = m.run({strategy!r}, 100)
    print(json.dumps(out), flush=True)
    """
    report = tmp_path / "r.jsonl"
    out = finish(start(pyext_dir, body, report))
    evs = events(report)
    assert [e["ev"] for e in evs] == ["unsupported"]
    assert "Windows" in evs[0]["reason"]
    assert out["result"] == {"unsupported": evs[0]["reason"]}


# ---- many runs in one process ----

def test_runs_in_one_process_each_report_their_own_sequence(pyext_dir, tmp_path):
    body = """
    out["results"] = [m.run(s, %d) for s in ("c-handler-per-call", "self-pipe", "c-handler-per-call")]
    print(json.dumps(out), flush=True)
    """ % LOOP_MS
    report = tmp_path / "r.jsonl"
    proc = start(pyext_dir, body, report)
    for n in (1, 2, 3):
        wait_for(report, "ready", n)
        os.kill(proc.pid, signal.SIGINT)
        wait_for(report, "done", n)
    out = finish(proc)
    assert [e["ev"] for e in events(report)] == ["ready", "fired", "done"] * 3
    assert [r["fired"] for r in out["results"]] == [["c-handler-per-call"], ["self-pipe"], ["c-handler-per-call"]]


# ---- the unix: channel ----

@pytest.fixture
def listener():
    directory = tempfile.mkdtemp(prefix="sp-", dir="/tmp")  # short: sun_path holds 108 bytes
    path = os.path.join(directory, "report.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(4)
    sock.settimeout(DEADLINE_S)
    yield sock, path
    sock.close()
    shutil.rmtree(directory)


def read_events_until(conn, last):
    buf, got = b"", []
    conn.settimeout(DEADLINE_S)
    while not got or got[-1]["ev"] != last:
        chunk = conn.recv(4096)
        assert chunk, f"channel closed after {got}"
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            got.append(json.loads(line))
    return got


def test_unix_channel_carries_ready_fired_done(pyext_dir, listener):
    sock, path = listener
    proc = start(pyext_dir, 'out["result"] = m.run("c-handler-per-call", %d)\nprint(json.dumps(out))' % LOOP_MS,
                 "unix:" + path)
    conn, _ = sock.accept()
    with conn:
        got = read_events_until(conn, "ready")
        os.kill(proc.pid, signal.SIGINT)
        got += read_events_until(conn, "done")
        assert conn.recv(16) == b""  # one connection per run, closed after "done"
    assert [e["ev"] for e in got] == ["ready", "fired", "done"]
    assert (got[1]["handler"], got[1]["si_pid"]) == ("c-handler-per-call", os.getpid())
    assert finish(proc)["result"]["stopped_by"] == "c-handler-per-call"


def test_unix_channel_stop_ends_the_loop_as_runner(pyext_dir, listener):
    sock, path = listener
    proc = start(pyext_dir, 'out["result"] = m.run("self-pipe", %d, nogil=True)\nprint(json.dumps(out))' % LOOP_MS,
                 "unix:" + path)
    conn, _ = sock.accept()
    with conn:
        read_events_until(conn, "ready")
        conn.sendall(b"stop\n")
        done = read_events_until(conn, "done")
    assert [e["ev"] for e in done] == ["done"] and done[0]["stopped_by"] == "runner"
    result = finish(proc)["result"]
    assert (result["stopped_by"], result["fired"]) == ("runner", [])
