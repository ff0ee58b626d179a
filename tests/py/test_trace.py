"""The kernel's record (trace.py): `run --trace`, `sigprobe trace --pid`, the
unsupported path, and that no trace instance is ever left behind."""
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sigprobe import trace

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "sigprobe"

TRACEFS, WHY = trace.availability()
needs_tracefs = pytest.mark.skipif(
    TRACEFS is None and os.environ.get("CI") != "true",
    reason=f"tracing is not possible here: {WHY}")  # in CI (root) it must be: the tests then fail


def instances_of(pid: int) -> list[str]:
    return sorted(p.name for p in (TRACEFS / "instances").glob(f"{trace.INSTANCE_PREFIX}{pid}-*"))


def orphans() -> list[str]:
    """sigprobe instances whose owner is gone: what a broken teardown leaves."""
    out = []
    for p in (TRACEFS / "instances").glob(trace.INSTANCE_PREFIX + "*"):
        owner = int(p.name[len(trace.INSTANCE_PREFIX):].split("-")[0])
        if not Path(f"/proc/{owner}").exists():
            out.append(p.name)
    return out


# ---- parsing the instance's trace_pipe (lines as this kernel prints them) ------

# A sender's tid above PID_MAX_LIMIT (2**22): no task of this machine has it, so the
# line's own names stand (a live sender is asked of /proc: tid 35 was a kworker
# here, named kworker/u8:2-events_unbound there).
GONE = 4194305


def test_parse_line_reads_a_tty_generated_signal():
    e = trace.parse_line(f"    kworker/u8:2-{GONE} ({GONE}) [000] d..2.  1567.149838: signal_generate: "
                         "sig=2 errno=0 code=128 comm=sigprobe-probe- pid=15872 grp=1 res=0")
    assert e == {"t_ns": 1567149838000, "comm": "kworker/u8:2", "tid": GONE, "pid": GONE, "ev": "generate",
                 "sig": 2, "code": 128, "target_comm": "sigprobe-probe-", "target_tid": 15872,
                 "group": True, "result": "delivered"}


def test_parse_line_reads_a_delivery_on_another_thread_and_exit_group():
    d = trace.parse_line(" sigprobe-probe--15967   (  15964) [000] d..1.  1567.394068: signal_deliver: "
                         "sig=9 errno=0 code=0 sa_handler=0 sa_flags=0")
    assert (d["ev"], d["tid"], d["pid"], d["sig"], d["sa_handler"]) == ("deliver", 15967, 15964, 9, 0)
    x = trace.parse_line(" sigprobe-probe--12600   (  12600) [001] .....  1867.336339: sys_exit_group(error_code: 0)")
    assert (x["ev"], x["pid"], x["code"]) == ("exit_group", 12600, 0)


def test_results_are_named_as_in_the_kernel_header():
    assert [trace.RESULTS[i] for i in range(5)] == ["delivered", "ignored", "already-pending", "overflow",
                                                    "lose-info"]


# ---- run --trace: the kernel's story of deterministic cells ---------------------

CELLS = ("linux/background/none/kill", "linux/no-tty/sigaction/kill", "linux/tty/sigaction/tty-intr")


@pytest.fixture(scope="module")
def traced(sigprobe, tmp_path_factory):
    out = tmp_path_factory.mktemp("trace") / "traced.json"
    args = [a for c in CELLS for a in ("--only", c)]
    r = sigprobe("run", *args, "--repeat", "2", "--trace", "--out", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    return doc, {c["id"]: c for c in doc["cells"]}, out


def events(run, kind, sig="SIGINT"):
    return [e for e in run["trace"] if e["kind"] == kind and e["signal"] == sig]


@needs_tracefs
def test_run_trace_is_on_and_leaves_no_instance(traced):
    doc, _, _ = traced
    assert doc["settings"]["trace"] == "on"
    assert orphans() == []


@needs_tracefs
def test_background_none_kill_is_generated_and_ignored_by_the_kernel(traced):
    _, cells, _ = traced
    for run in cells["linux/background/none/kill"]["runs"]:
        assert run["verdict"] == "ignored"
        (gen,) = events(run, "generate")
        assert gen["sender"]["pid"] == run["delivered"]["sender_pid"]
        assert gen["target"]["pid"] == run["probe"]["pid"]
        assert gen["result"] == "ignored"
        assert events(run, "deliver") == []  # an ignored signal is never queued
        assert run["kernel"]["taken"] == "ignored" and run["kernel"]["agrees"] is True


@needs_tracefs
def test_no_tty_sigaction_kill_is_sent_by_the_runner_and_handled_on_the_main_thread(traced):
    _, cells, _ = traced
    for run in cells["linux/no-tty/sigaction/kill"]["runs"]:
        (gen,) = events(run, "generate")
        assert gen["sender"]["pid"] == run["delivered"]["sender_pid"]  # the runner
        assert gen["sender"]["comm"] == "sigprobe-run"
        assert gen["si_code"] == "SI_USER" and gen["result"] == "delivered"
        assert gen["target"] == {"pid": run["probe"]["pid"], "thread": "main", "comm": "sigprobe-probe-"}
        (dlv,) = events(run, "deliver")
        assert dlv["thread"] == "main" and dlv["action"] == "handler"
        assert int(dlv["sa_handler"], 16) > 1  # neither SIG_DFL nor SIG_IGN
        assert gen["t_ns"] <= dlv["t_ns"]
        assert run["kernel"] == {"by": "runner", "si_code": "SI_USER", "result": "delivered",
                                 "taken": "handler", "thread": "main", "agrees": True}


@needs_tracefs
def test_tty_intr_is_generated_by_a_kworker_not_the_runner(traced):
    """The runner writes ^C to the pty master; the line discipline runs from the
    tty's flip-buffer work, so the tracepoint's current task is a kworker."""
    _, cells, _ = traced
    for run in cells["linux/tty/sigaction/tty-intr"]["runs"]:
        (gen,) = events(run, "generate")
        sender = gen["sender"]
        assert sender["pid"] != run["delivered"]["sender_pid"]
        assert sender["comm"].startswith("kworker/")
        assert sender["tid"] == sender["pid"]  # a kernel thread
        assert gen["si_code"] == "SI_KERNEL" and gen["group"] is True and gen["result"] == "delivered"
        (dlv,) = events(run, "deliver")
        assert dlv["thread"] == "main" and dlv["action"] == "handler"
        assert run["kernel"]["taken"] == "handler" and run["kernel"]["agrees"] is True
        assert run["fired"][0]["si_code"] == "SI_KERNEL"  # the probe saw the same


@needs_tracefs
def test_markdown_puts_the_kernel_beside_the_verdict(traced):
    _, _, out = traced
    md = out.with_suffix(".md").read_text()
    assert "ignored<br>kernel: runner → ignored" in md
    assert "kernel: runner → delivered → handler on main" in md
    assert "## The kernel's record" in md
    assert "agrees with the kernel's record" in md


def test_a_disagreement_is_pointed_out():
    """not-delivered per the probe, but the kernel ran a handler on another thread."""
    run = {"verdict": "not-delivered", "delivered": {"signal": "SIGINT", "sender_pid": 10}, "fired": [],
           "trace": [{"kind": "generate", "t_ns": 1, "signal": "SIGINT", "si_code": "SI_USER",
                      "sender": {"pid": 10, "tid": 10, "comm": "sigprobe-run"},
                      "target": {"pid": 11, "thread": "main", "comm": "x"}, "group": True, "result": "delivered"},
                     {"kind": "deliver", "t_ns": 2, "signal": "SIGINT", "si_code": "SI_USER", "pid": 11,
                      "thread": "other (12)", "action": "handler", "sa_handler": "0x5555"}]}
    run["kernel"] = trace.story(run)
    assert run["kernel"]["agrees"] is False
    doc = {"cells": [{"id": "linux/no-tty/x/kill", "runs": [run]}]}
    (line,) = trace.disagreements(doc)
    assert "`not-delivered`" in line and "handler on other" in line


# ---- teardown on SIGINT / SIGTERM -------------------------------------------------

@needs_tracefs
@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_traced_run_removes_its_instance(build_dir, tmp_path, signo):
    out = tmp_path / "partial.json"
    native = [a for h in ("tty", "no-tty", "background") for a in ("--only", f"linux/{h}/*")]
    p = subprocess.Popen([sys.executable, str(SCRIPT), "run", *native, "--repeat", "1", "-j", "1", "--trace",
                          "--out", str(out), "--build-dir", str(build_dir)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Mid-run: the first cell is finished (its progress line), 83 are not.
        progress = ""
        while not progress.startswith("[") and p.poll() is None:
            progress = p.stderr.readline()
        assert progress.startswith("[ 1/84]"), progress
        assert instances_of(p.pid), "the traced run has no instance"
        p.send_signal(signo)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 128 + signo, err
    assert instances_of(p.pid) == []
    assert orphans() == []
    doc = json.loads(out.read_text())
    assert doc["partial"] is True
    runs = [r for c in doc["cells"] for r in c["runs"]]
    assert runs and all(isinstance(r["trace"], list) for r in runs)


# ---- sigprobe trace --pid -----------------------------------------------------------

VICTIM = """
import signal, sys, time
signal.signal(signal.SIGUSR1, lambda *a: None)
signal.signal(signal.SIGUSR2, signal.SIG_IGN)
print("ready", flush=True)
sys.stdin.readline()
time.sleep(0.3)
"""


@needs_tracefs
@pytest.mark.parametrize("command", ["trace", "doctor"])
def test_watch_a_short_lived_process_until_it_exits(sigprobe, command):
    victim = subprocess.Popen([sys.executable, "-c", VICTIM], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert victim.stdout.readline().strip() == "ready"
        how = ["--seconds", "30"] if command == "trace" else ["--watch", "30"]
        w = subprocess.Popen([sys.executable, str(SCRIPT), command, "--pid", str(victim.pid), *how],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # `doctor --watch` prints its report first, then the live trace.
        first = w.stdout.readline()
        while command == "doctor" and first and not first.startswith("sigprobe: watching"):
            first = w.stdout.readline()
        assert first.startswith(f"sigprobe: watching pid {victim.pid}"), first
        os.kill(victim.pid, signal.SIGUSR1)
        os.kill(victim.pid, signal.SIGUSR2)
        victim.stdin.write("go\n")
        victim.stdin.flush()
        rest, err = w.communicate(timeout=30)
    finally:
        for proc in (victim,):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert w.returncode == 0, err
    lines = rest.splitlines()
    me = f"[{os.getpid()}] → "
    assert any("SIGUSR1" in x and me in x and x.endswith("SI_USER: delivered") for x in lines), rest
    assert any("SIGUSR1" in x and "taken by python" in x and "handler" in x for x in lines), rest
    assert any("SIGUSR2" in x and me in x and x.endswith("SI_USER: ignored") for x in lines), rest
    assert any(x.startswith(f"sigprobe: pid {victim.pid} exited after ") and x.endswith("; the watch ends")
               for x in lines), rest
    assert "ended by exited" in lines[-1]
    assert "SIGUSR1 delivered ×1" in lines[-1] and "SIGUSR2 ignored ×1" in lines[-1]
    assert instances_of(w.pid) == []


def test_watch_a_pid_that_never_existed_is_bad_input(sigprobe):
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    r = sigprobe("trace", "--pid", str(pid_max + 1), "--seconds", "1")
    assert r.returncode == 2
    assert r.stderr.strip() == f"sigprobe: no process with pid {pid_max + 1}"


# ---- no tracefs ------------------------------------------------------------------------

def test_without_tracefs_the_trace_is_unsupported_and_the_run_still_works(sigprobe, tmp_path):
    env = dict(os.environ, SIGPROBE_TRACEFS=str(tmp_path / "no-tracefs"))
    out = tmp_path / "r.json"
    r = sigprobe("run", "--only", "linux/no-tty/sigaction/kill", "--repeat", "2", "--trace", "--out", str(out),
                 env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["settings"]["trace"] == "unsupported"
    assert str(tmp_path / "no-tracefs") in doc["settings"]["trace_reason"]
    (cell,) = doc["cells"]
    assert cell["verdict"] == "handled"
    for run in cell["runs"]:
        assert run["trace"] == "unsupported"
        assert "no tracefs" in run["trace_reason"]
        assert "kernel" not in run
    assert "Not traced: no tracefs" in out.with_suffix(".md").read_text()
    w = sigprobe("trace", "--pid", str(os.getpid()), "--seconds", "1", env=env)
    assert w.returncode == 2
    assert w.stderr.startswith("sigprobe: cannot trace signals here: no tracefs")


# ---- Jupyter cells -----------------------------------------------------------------------

@needs_tracefs
def test_a_jupyter_cell_records_who_sent_it_and_the_thread_that_took_it(sigprobe, tmp_path):
    out = tmp_path / "jupyter.json"
    r = sigprobe("run", "--trace", "--repeat", "1", "--out", str(out),
                 "--only", "linux/jupyter/c-handler-per-call/kernel-interrupt",
                 "--only", "linux/jupyter-message/c-handler-per-call+nogil/kernel-interrupt")
    assert r.returncode == 0, r.stderr
    cells = {c["id"]: c for c in json.loads(out.read_text())["cells"]}
    signal_mode = cells["linux/jupyter/c-handler-per-call/kernel-interrupt"]["runs"][0]
    kernel_pid = signal_mode["python"]["kernel_pid"]
    (gen,) = events(signal_mode, "generate")
    # interrupt_mode signal: jupyter_client's killpg, from the process that called interrupt_kernel().
    assert gen["sender"]["pid"] == signal_mode["delivered"]["sender_pid"] != kernel_pid
    assert signal_mode["kernel"]["taken"] == "handler"
    assert signal_mode["kernel"]["thread"].startswith(("main", "other"))  # the delivery thread is recorded
    message_mode = cells["linux/jupyter-message/c-handler-per-call+nogil/kernel-interrupt"]["runs"][0]
    (gen,) = events(message_mode, "generate")
    # interrupt_mode message: the kernel's control thread sends SIGINT to its own group.
    assert gen["sender"]["pid"] == message_mode["python"]["kernel_pid"]
    assert message_mode["kernel"]["thread"]


def test_evicted_task_names_are_asked_of_proc():
    """Under process churn ftrace's caches lose entries (<...>, -------): a thread that
    still runs is named from /proc with its tgid, one that is gone stays unknown (tgid: its tid)."""
    line = ("           <...>-{tid} (-------) [001] d..2. 12345.678901: signal_deliver: sig=2 errno=0 code=128 "
            "sa_handler=55d0c0c0 sa_flags=14000000")
    tid = threading.get_native_id()
    ev = trace.parse_line(line.format(tid=tid))
    assert (ev["comm"], ev["tid"], ev["pid"]) == (Path(f"/proc/{tid}/comm").read_text().strip(), tid, os.getpid())
    gone = trace.parse_line(line.format(tid=4_000_000))  # above any pid_max
    assert (gone["comm"], gone["pid"]) == ("<...>", 4_000_000)


def test_a_senders_stale_cached_name_is_replaced_by_its_name_in_proc():
    """ftrace writes a task's name to its cache at the task's next context
    switch: a signal_generate line read before that names the sender after
    the process that last had its pid (seen in CI: the runner shown as
    `sigprobe-host.e`, a Wine process of another test). A sender that still
    runs is named, with its tgid, from /proc; one that is gone keeps the cache's."""
    line = ("  sigprobe-host.e-{tid} ( {tgid}) [001] d..2. 12345.678901: signal_generate: sig=2 errno=0 code=0 "
            "comm=sigprobe-probe- pid=4242 grp=1 res=0")
    tid = threading.get_native_id()
    ev = trace.parse_line(line.format(tid=tid, tgid=tid))
    assert (ev["comm"], ev["tid"], ev["pid"]) == (Path(f"/proc/{tid}/comm").read_text().strip(), tid, os.getpid())
    assert ev["comm"] != "sigprobe-host.e"
    gone = trace.parse_line(line.format(tid=4_000_000, tgid=4_000_000))
    assert (gone["comm"], gone["pid"]) == ("sigprobe-host.e", 4_000_000)


def test_a_delivery_with_a_stale_cached_tgid_is_still_the_probes():
    """ftrace prints a task's tgid from a pid-indexed cache written at the
    task's next context switch after an event: a signal_deliver line read
    before the probe switched out gave it the tgid of another process that
    once had its pid, and the run's trace lacked the delivery (`runner →
    delivered → queued` for a handled run; once in a fresh clone's suite).
    The delivering thread, while it runs, is asked of /proc; and the probe's
    main thread is its pid whatever the tgid says."""
    line = ("  sigprobe-probe--{tid} ( {tgid}) [001] d..1. 12345.678901: signal_deliver: sig=2 errno=0 code=0 "
            "sa_handler=55d0c0c0 sa_flags=14000000")
    tid = threading.get_native_id()
    ev = trace.parse_line(line.format(tid=tid, tgid=31337))
    assert (ev["tid"], ev["pid"]) == (tid, os.getpid())
    probe = 4_000_000  # gone by the time the line is read: the cache's tgid stands
    stale = trace.parse_line(line.format(tid=probe, tgid=31337))
    assert stale["pid"] == 31337
    (dlv,) = trace.run_events([stale], probe)
    assert (dlv["kind"], dlv["thread"], dlv["action"]) == ("deliver", "main", "handler")


def test_a_kernel_runs_events_end_where_its_driver_saw_the_run_end():
    """A kernel run's events are those up to when its driver had the verdict
    (t_end_ns), not up to when the outcome reached sigprobe: a driver whose lane
    ended shuts its kernel down in between, and jupyter_client's shutdown
    interrupts the kernel first (a second SIGINT in the run's trace, seen
    with the lanes side by side)."""
    import time

    from sigprobe import trace

    now = time.monotonic_ns()
    kernel, driver = 4242, 4241

    def gen(t):
        return {"ev": "generate", "t_ns": t, "sig": 2, "code": 0, "comm": "python", "tid": driver, "pid": driver,
                "target_comm": "python", "target_tid": kernel, "group": True, "result": "delivered"}

    class Instance:
        def sync(self, _):
            return True

        def take(self):
            return [gen(now - 50_000_000), gen(now + 20_000_000)]  # the run's, then the shutdown's

    tracer = trace.RunTracer.__new__(trace.RunTracer)
    tracer.instance = Instance()
    got = []
    outcome = {"probe": {"pid": kernel}, "wall_us": 100_000.0, "t_end_ns": now,
               "delivered": {"signal": "SIGINT", "sender_pid": driver}}
    time.sleep(0.03)  # the outcome reaches sigprobe after the shutdown
    tracer.wrap_add(lambda cell, o: got.append(o))(None, outcome)
    assert [e["t_ns"] for e in got[0]["trace"]] == [now - 50_000_000]


def test_a_watched_thread_is_named_by_the_signal_sent_to_it_not_by_ftraces_cache():
    """ftrace names the task a signal is delivered in from a pid-indexed cache;
    a pid reused from a process that ended leaves it naming that process
    (a python victim shown as `sigprobe-probe-`). The watch names the thread
    as the signal sent to it did (the event's own field)."""
    from sigprobe import trace

    said = []
    tracked, names, summary = {77}, {77: "python"}, {"generated": {}, "taken": {}}
    generate = {"ev": "generate", "t_ns": 1_000_000_000, "sig": 10, "code": 0, "comm": "python", "tid": 5, "pid": 5,
                "target_comm": "python", "target_tid": 77, "group": True, "result": "delivered"}
    deliver = {"ev": "deliver", "t_ns": 1_000_100_000, "sig": 10, "code": 0, "comm": "sigprobe-probe-", "tid": 77,
               "pid": 77, "sa_handler": 0x55d0c0c0, "sa_flags": 0}
    for e in (generate, deliver):
        trace._watch_event(e, tracked, names, summary, said.append, 0.0)
    assert "taken by python[77] thread 77: handler" in said[1], said
