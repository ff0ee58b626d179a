"""Hardening: interrupting sigprobe itself, no stray signals, nothing left
behind when a runner dies outright, bad input everywhere, atomic writes."""
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sigprobe.errors import BadInput
from sigprobe.results import document as results
from helpers import one_error_line

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "sigprobe"
NATIVE = ["--only", "linux/tty/*", "--only", "linux/no-tty/*", "--only", "linux/background/*"]


def session_members(sid: int) -> list[str]:
    """Every process in session sid, as 'pid cmdline' (zombies included)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) == sid:  # state ppid pgrp session
                cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{d} {cmd}")
        except (OSError, ValueError):
            continue
    return found


def with_marker(marker: str) -> list[str]:
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{d}/cmdline").read_bytes():
                    found.append(d)
            except OSError:
                pass
    return found


def read_until(fd: int, needle: bytes | None, timeout: float) -> bytes:
    """What fd gives until needle shows (None: until EOF), or the timeout."""
    buf, end = b"", time.monotonic() + timeout
    while (needle is None or needle not in buf) and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


def until_checkpoint(fd: int, out: Path, timeout: float) -> bytes:
    """What fd gives (the run's progress, read so that it never blocks on a
    full terminal) until the run's first checkpoint is on disk: runs have
    finished and the run is in its middle."""
    buf, end = b"", time.monotonic() + timeout
    while not out.exists() and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            buf += chunk
    return buf


def drain(fd: int, timeout: float) -> bytes:
    return read_until(fd, None, timeout)


def check_partial(out: Path, repeat: int):
    """Every run finished before the interrupt is kept (a cell with fewer runs
    than asked says so), and no run the interrupt cut short is counted."""
    doc = json.loads(out.read_text())
    assert doc["partial"] is True
    assert doc["cells"], "runs that finished before the interrupt are kept"
    assert any("runs_done" in c for c in doc["cells"]), "the interrupt came in the middle"
    for c in doc["cells"]:
        assert 1 <= len(c["runs"]) <= repeat, c["id"]
        if len(c["runs"]) < repeat:
            assert (c["runs_done"], c["runs_asked"]) == (len(c["runs"]), repeat), c["id"]
        else:
            assert "runs_done" not in c, c["id"]
        assert all("interrupted" not in (r.get("reason") or "") and r["verdict"] != "error" for r in c["runs"]), c["id"]
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name, out.with_suffix(".md").name], \
        "no temporary file is left"
    return doc


# ---- interrupting sigprobe itself ------------------------------------------

def test_ctrl_c_in_a_terminal_ends_the_run_partial_with_130(tmp_path, build_dir):
    """Ctrl+C as a terminal sends it: SIGINT to the whole foreground group
    (sigprobe and its runners), through a real pty's INTR character."""
    out = tmp_path / "res" / "doc.json"
    pid, master = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, str(SCRIPT), "run", *NATIVE, "--repeat", "20", "-j", "2",
                                  "--out", str(out), "--build-dir", str(build_dir)])
    try:
        seen = until_checkpoint(master, out, 120)
        assert out.exists(), seen.decode(errors="replace")
        t0 = time.monotonic()
        os.write(master, b"\x03")
        rest = drain(master, 20)
        _, status = os.waitpid(pid, 0)
        took = time.monotonic() - t0
    finally:
        os.close(master)
    assert os.waitstatus_to_exitcode(status) == 130, (seen + rest).decode(errors="replace")
    assert took < 10, f"took {took:.1f} s to stop"
    assert b"interrupted by SIGINT" in rest
    assert session_members(pid) == [], "nothing of the run is left in its session"
    check_partial(out, 20)


def test_sigterm_to_sigprobe_alone_ends_its_runners_partial_with_143(tmp_path, build_dir):
    out = tmp_path / "doc.json"
    p = subprocess.Popen([sys.executable, str(SCRIPT), "run", *NATIVE, "--repeat", "20", "-j", "2",
                          "--out", str(out), "--build-dir", str(build_dir)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    seen = until_checkpoint(p.stderr.fileno(), out, 120)
    assert out.exists(), seen.decode(errors="replace")
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 143, err
    assert time.monotonic() - t0 < 5, "runners are ended, not waited for"
    assert b"interrupted by SIGTERM" in err
    assert session_members(p.pid) == []
    check_partial(out, 20)


# ---- nothing left when a runner dies outright -------------------------------

CHAIN = r"""
import os, signal, subprocess, sys, time
from sigprobe.runners import native
runner, hostile, marker = sys.argv[2:5]
assert native.become_subreaper()
p = subprocess.Popen([runner, "--ready-ms", "30000", "--deadline-ms", "30000", "--host", "no-tty",
                      "--delivery", "kill", "--label", "linux/no-tty/hostile-escape/kill",
                      "--exec", hostile, "escape", marker], stdout=subprocess.DEVNULL)
def marked():
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            try:
                n += marker.encode() in open(f"/proc/{d}/cmdline", "rb").read()
            except OSError:
                pass
    return n
# Until all three run: a loaded machine took over 3 s (the bound this had) to start them.
deadline = time.monotonic() + 30
while marked() < 3 and time.monotonic() < deadline:
    time.sleep(0.01)
before = marked()
p.kill(); p.wait()           # the runner dies outright: no cleanup of its own
time.sleep(0.3)              # the probe dies by PR_SET_PDEATHSIG; the grandchild comes here
ended = native.reap_orphans()
print(before, ended, marked())
"""


def test_runner_killed_outright_leaves_nothing_once_sigprobe_reaps(build_dir):
    marker = f"sp-chain-{os.getpid()}"
    r = subprocess.run([sys.executable, "-c", CHAIN, str(ROOT / "scripts"), str(build_dir / "sigprobe-run"),
                        str(build_dir / "tests" / "sigprobe-hostile"), marker],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    before, ended, after = map(int, r.stdout.split())
    assert before == 3, "runner, probe and escaped grandchild were running"
    assert ended >= 1, "the escaped grandchild was re-parented to sigprobe and ended"
    assert after == 0
    assert with_marker(marker) == []


# ---- no stray signals --------------------------------------------------------

LEADER = r"""
import fcntl, json, os, subprocess, sys, termios
slave, sentinel, script, build, out = sys.argv[1:6]
only = sys.argv[6:]
fd = os.open(slave, os.O_RDWR)
fcntl.ioctl(fd, termios.TIOCSCTTY, 0)  # this new session's controlling terminal
assert os.tcgetpgrp(fd) == os.getpgrp()
s = subprocess.Popen([sentinel], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=fd)
assert os.getpgid(s.pid) == os.getpgrp() and os.getsid(s.pid) == os.getsid(0)
r = subprocess.run([sys.executable, script, "run", *only, "--repeat", "1", "-j", "2", "--quiet",
                    "--out", out, "--build-dir", build], stdin=fd, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, text=True)
counts, _ = s.communicate(b"")
print(json.dumps({"rc": r.returncode, "stderr": r.stderr[-2000:], "sentinel": json.loads(counts)}))
"""


def test_no_signal_reaches_the_runners_group_session_or_terminal(tmp_path, build_dir):
    """The whole native matrix plus Python and Jupyter cells, with a sentinel in
    the runner's own process group and session, on its controlling terminal
    (the foreground group): it must count zero signals."""
    master, slave = pty.openpty()
    slave_name = os.ttyname(slave)
    os.close(slave)
    out = tmp_path / "doc.json"
    only = NATIVE + ["--only", "linux/python-no-tty/check-signals/killpg", "--only", "linux/python-tty/self-pipe/tty-intr",
                     "--only", "linux/jupyter/check-signals/kernel-interrupt",
                     "--only", "linux/jupyter-child/sigaction/kernel-interrupt"]
    p = subprocess.Popen([sys.executable, "-c", LEADER, slave_name, str(build_dir / "tests" / "sigprobe-sentinel"),
                          str(SCRIPT), str(build_dir), str(out), *only],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        so, se = p.communicate(timeout=600)
    finally:
        os.close(master)
    assert p.returncode == 0, se
    res = json.loads(so)
    assert res["rc"] == 0, res["stderr"]
    assert res["sentinel"]["total"] == 0, res["sentinel"]
    doc = json.loads(out.read_text())
    assert len(doc["cells"]) == 84 + 4


# ---- bad input ----------------------------------------------------------------

RUNNER_BAD = [
    ([], "no cell given"),
    (["tty/none"], "expected"),
    (["linux/tty/none/kill/extra"], ""),
    (["tyy/none/kill"], "unknown host 'tyy'"),
    (["tty/nope/kill"], "unknown strategy 'nope'"),
    (["tty/none/kil"], "unknown delivery 'kil'"),
    (["macos/tty/none/kill"], ""),
    (["", ], ""),
    (["x" * 100000], ""),
    (["tty/none/kill", "tty/none/kill"], "only one cell"),
    (["--frobnicate"], "unknown option"),
    (["--ready-ms"], "--ready-ms needs"),
    (["--ready-ms", "0", "tty/none/kill"], "--ready-ms needs"),
    (["--ready-ms", "-5", "tty/none/kill"], "--ready-ms needs"),
    (["--window-ms", "abc", "tty/none/kill"], "--window-ms needs"),
    (["--deadline-ms", "99999999999", "tty/none/kill"], "--deadline-ms needs"),
    (["--deadline-ms", "12x", "tty/none/kill"], "--deadline-ms needs"),
    (["--probe-dir"], "--probe-dir needs"),
    (["--probe-dir", "/nonexistent-sigprobe", "tty/none/kill"], "not a directory"),
    (["--host"], "--host needs a value"),
    (["--delivery"], "--delivery needs a value"),
    (["--label"], "--label needs a value"),
    (["--attach"], "--attach needs a value"),
    (["--exec"], "--exec needs"),
    (["--host", "tty", "tty/none/kill"], "go with --exec"),
    (["--label", "a/b/c/d", "--exec", "/bin/true"], "--exec needs --host"),
    (["--host", "tty", "--delivery", "kill", "--exec", "/bin/true"], "--label ID is required"),
    (["--host", "tty", "--delivery", "kill", "--label", "nolabel", "--exec", "/bin/true"], "bad label"),
    (["--host", "tty", "--delivery", "kill", "--label", "a/b/c/d/e", "--exec", "/bin/true"], "bad label"),
    (["--host", "tty", "--delivery", "kill", "--label", "x" * 5000, "--exec", "/bin/true"], "too long"),
    (["--host", "tyy", "--delivery", "kill", "--label", "a/b/c/d", "--exec", "/bin/true"], "unknown host"),
    (["--host", "tty", "--delivery", "nope", "--label", "a/b/c/d", "--exec", "/bin/true"], "unknown delivery"),
    (["--label", "a/b/c/d", "--attach", "/tmp/s", "--exec", "/bin/true"], "exclude each other"),
    (["tty/none/kill", "--label", "a/b/c/d", "--attach", "/tmp/s"], "take no CELL"),
]


@pytest.mark.parametrize("args, needle", RUNNER_BAD)
def test_runner_bad_input_is_one_line_and_exit_2(build_dir, args, needle):
    r = subprocess.run([str(build_dir / "sigprobe-run"), *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sigprobe-run: "), r.stderr
    assert needle in lines[0]


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf", "1e30", "1001"])
def test_runner_bad_timeout_multiplier_is_exit_2(build_dir, value):
    r = subprocess.run([str(build_dir / "sigprobe-run"), "no-tty/none/kill"], capture_output=True, text=True,
                       env=dict(os.environ, SIGPROBE_TIMEOUT_MULTIPLIER=value), timeout=30)
    assert r.returncode == 2 and r.stdout == ""
    assert "SIGPROBE_TIMEOUT_MULTIPLIER" in r.stderr and len(r.stderr.strip().splitlines()) == 1


CLI_BAD = [
    ([], "required"),
    (["list", "--only", "linux/zzz*"], "matches no cell"),
    (["list", "--platform", "mac"], "invalid choice"),
    (["list", "--build-dir", "/etc/passwd"], "not a directory"),
    (["list", "--nope"], "unrecognized arguments"),
    (["run", "--jobs", "0"], "at least 1"),
    (["run", "--jobs", "100000"], "at most 256"),
    (["run", "--jobs", "two"], "not a number"),
    (["run", "--repeat", "1000000"], "at most 1000"),
    (["run", "--window-scale", "0"], "must be positive"),
    (["run", "--window-scale", "-1"], "must be positive"),
    (["run", "--window-scale", "nan"], "finite"),
    (["run", "--window-scale", "inf"], "finite"),
    (["run", "--window-scale", "1e9"], "at most 1000"),
    (["run", "--window-scale", "x"], "not a number"),
    (["run", "--platform", "beos"], "invalid choice"),
    (["run", "--only"], "expected one argument"),
    (["run", "--only", "linux/tty/none/kill", "--out", "/proc/nope/x.json"], "cannot write there"),
    (["run", "--only", "linux/tty/none/kill", "--out", "/"], "must end in .json"),
    (["run", "--python", "/nonexistent/python", "--only", "linux/python-tty/none/tty-intr"], "not an executable"),
    (["run", "--platform", "windows-wine", "--fresh-kernels"], "--fresh-kernels"),
    (["bench", "--samples", "0"], "at least 1"),
    (["bench", "--samples", "1000000"], "at most 100000"),
    (["bench", "--frob"], "unrecognized arguments"),
]


@pytest.mark.parametrize("args, needle", CLI_BAD)
def test_cli_bad_input_is_one_line_and_exit_2(sigprobe, args, needle):
    assert needle in one_error_line(sigprobe(*args))


def test_cli_out_that_is_a_directory_is_refused_before_running(sigprobe, tmp_path):
    d = tmp_path / "x.json"
    d.mkdir()
    assert "is a directory" in one_error_line(sigprobe("run", "--only", "linux/tty/none/kill", "--out", str(d)))


@pytest.mark.parametrize("value", ["abc", "0", "nan", "5000"])
def test_cli_bad_timeout_multiplier_is_exit_2(sigprobe, value):
    r = sigprobe("run", "--only", "linux/tty/none/kill", env=dict(os.environ, SIGPROBE_TIMEOUT_MULTIPLIER=value))
    assert "SIGPROBE_TIMEOUT_MULTIPLIER" in one_error_line(r)


@pytest.mark.parametrize("content, needle", [
    (b"", "not JSON"),
    (b"\xff\xfe garbage", "not UTF-8"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    (b"[]", "wrong schema"),
    (b'"sigprobe-results/1"', "wrong schema"),
    (b'{"schema": "sigprobe-results/1", "cells": {}}', "not a list"),
    (b'{"schema": "sigprobe-results/1", "cells": [1]}', "lacks an id"),
    (b'{"schema": "sigprobe-results/1", "cells": [{"id": 3, "verdict": "handled"}]}', "lacks an id"),
    (b'{"schema": "sigprobe-results/1", "cells": [{"id": "a", "verdict": "handled"}', "not JSON"),
])
def test_broken_results_documents_are_one_bad_input(tmp_path, content, needle):
    p = tmp_path / "r.json"
    p.write_bytes(content)
    with pytest.raises(BadInput) as e:
        results.load(p)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_enormous_results_document_is_refused_without_reading_it_all(tmp_path):
    p = tmp_path / "r.json"
    with open(p, "wb") as f:
        f.truncate(results.MAX_DOCUMENT_BYTES + 1)  # sparse: no disk used
    with pytest.raises(BadInput) as e:
        results.load(p)
    assert "larger than" in str(e.value)


def test_results_document_that_is_a_directory_or_missing(tmp_path):
    for p in (tmp_path, tmp_path / "missing.json"):
        with pytest.raises(BadInput) as e:
            results.load(p)
        assert "cannot read" in str(e.value)


# ---- atomic writes --------------------------------------------------------------

WRITER = r"""
import json, sys
from sigprobe.results import document as results
from pathlib import Path
p = Path(sys.argv[2])
i = 0
while True:
    i += 1
    results.write_atomically(p, json.dumps({"n": i, "pad": "x" * 4_000_000}) + "\n")
"""


def test_writer_killed_mid_write_never_leaves_half_a_document(tmp_path):
    """SIGKILL at arbitrary points of a loop of 4 MB writes: the document is
    always a whole old one or a whole new one."""
    target = tmp_path / "d.json"
    results.write_atomically(target, json.dumps({"n": 0}) + "\n")
    for delay in (0.05, 0.11, 0.17, 0.23, 0.31, 0.43):
        w = subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT / "scripts"), str(target)])
        time.sleep(delay)
        w.kill()
        w.wait()
        doc = json.loads(target.read_text())  # raises on a half file
        assert isinstance(doc["n"], int)


def test_failed_write_keeps_the_old_document_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "d.json"
    results.write_atomically(target, '{"old": 1}\n')

    def boom(*a):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(BadInput) as e:
        results.write_atomically(target, '{"new": 1}\n')
    assert "No space left" in str(e.value)
    assert target.read_text() == '{"old": 1}\n'
    assert [x.name for x in tmp_path.iterdir()] == ["d.json"]


def attached_runner(build_dir, tmp_path):
    """sigprobe-run --attach, as the Jupyter driver starts it: its stdin is
    the parent's side, its first line where the probe reports (and the token)."""
    proc = subprocess.Popen([str(build_dir / "sigprobe-run"), "--label", "linux/jupyter/event-thread/kernel-interrupt",
                             "--ready-ms", "5000", "--attach", str(tmp_path / "r.sock")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    report = json.loads(proc.stdout.readline())["report"]
    path, token = report[len("unix:"):].rsplit("#", 1)
    return proc, path, token


def probe_says(path: str, token: str, *events: dict) -> None:
    """A probe's words on the runner's socket (nothing, if the runner has gone)."""
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError:
            return
        s.sendall((json.dumps({"ev": "hello", "proto": 2, "token": token}, separators=(",", ":")) + "\n"
                   + "".join(json.dumps(e) + "\n" for e in events)).encode())


def test_an_attached_probe_heard_after_the_parents_result_still_decides(build_dir, tmp_path):
    """The cell of an unsupported strategy ends as soon as its probe has said
    so; on a loaded machine the driver's result (the cell replied) can reach
    the runner before the probe's words do. The probe's account decides:
    `unsupported`, not "the probe never reported ready" (once in a fresh
    clone's suite). A cell that ended with nothing from the probe is still
    that error."""
    proc, path, token = attached_runner(build_dir, tmp_path)
    proc.stdin.write(json.dumps({"ev": "result", "status": "ok", "kernel_pid": 1, "where": "nowhere"}) + "\n")
    proc.stdin.flush()
    time.sleep(0.05)  # the result is in before the probe connects
    probe_says(path, token, {"ev": "unsupported", "reason": "no JPY_INTERRUPT_EVENT on Linux"})
    out, _ = proc.communicate(timeout=30)
    outcome = json.loads(out.splitlines()[-1])
    assert outcome["verdict"] == "unsupported" and outcome["reason"] == "no JPY_INTERRUPT_EVENT on Linux", outcome

    proc, path, token = attached_runner(build_dir, tmp_path)
    t0 = time.monotonic()
    out, _ = proc.communicate(json.dumps({"ev": "result", "status": "error", "ename": "NameError",
                                          "kernel_pid": 1, "where": "nowhere"}) + "\n", timeout=30)
    outcome = json.loads(out.splitlines()[-1])
    assert outcome["verdict"] == "error" and outcome["reason"].startswith("the probe never reported ready"), outcome
    assert time.monotonic() - t0 < 3, "a short grace for the probe's words, not the ready deadline"


@pytest.mark.parametrize("told_after_s", [0.0, 0.3])
def test_an_attached_runners_window_starts_when_its_parent_says_it_delivered(build_dir, tmp_path, told_after_s):
    """A kernel in message mode signals itself only once its control thread
    has handled the request, and the driver says "delivered" then, with the
    time of the request (the latency counts from it). The window, after
    which the runner asks the probe's loop to stop, starts when the runner
    hears it, not at that earlier time: here 300 ms earlier, three windows."""
    import socket
    proc, path, token = attached_runner(build_dir, tmp_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.connect(path)
        probe.sendall((json.dumps({"ev": "hello", "proto": 2, "token": token}, separators=(",", ":")) + "\n"
                       + json.dumps({"ev": "ready", "pid": os.getpid(), "strategies": ["event-thread"]}) + "\n").encode())
        assert json.loads(proc.stdout.readline()) == {"ev": "deliver"}
        asked = time.monotonic_ns()
        time.sleep(told_after_s)
        told = time.monotonic()
        proc.stdin.write(json.dumps({"ev": "delivered", "t_ns": asked, "sig": "SIGINT", "sender_pid": os.getpid()})
                         + "\n")
        proc.stdin.flush()
        probe.settimeout(10)
        assert probe.recv(64).startswith(b"stop")
        assert time.monotonic() - told >= 0.1, "the whole window, from when the runner heard of the delivery"
        probe.sendall((json.dumps({"ev": "done", "stopped_by": "runner"}) + "\n").encode())
    proc.stdin.write(json.dumps({"ev": "result", "where": "nowhere", "status": "ok", "kernel_pid": os.getpid()}) + "\n")
    out, _ = proc.communicate(timeout=30)
    outcome = json.loads(out.splitlines()[-1])
    assert outcome["verdict"] == "lost" and outcome["stopped_by"] == "runner", outcome
