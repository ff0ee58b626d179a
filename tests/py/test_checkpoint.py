"""No work lost: the results document is a checkpoint while `sigprobe run`
runs (SIGINT, SIGTERM, SIGKILL each leave a valid document with the runs made
so far), `--resume` finishes it, results honour the umask, and what a killed
run left in the temporary directory is removed by the next run."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers import one_error_line

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "sigprobe"
# 4 native cells (2-20 ms a run, by the machine) and 2 Python cells whose every
# run lasts its window (`none` is deferred: the call ends on its own, 0.3 s at
# --window-scale 3): --repeat 20 runs for several seconds on any machine (8
# native cells alone once ended in 0.3 s, before the first checkpoint).
LONG = ["--only", "linux/no-tty/sigaction/*", "--only", "linux/python-no-tty/none/*"]
PACE = ["--window-scale", "3"]
ONE = ["--only", "linux/no-tty/sigaction/kill"]


def start(build_dir, out: Path, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SCRIPT), "run", *args, "--out", str(out), "--build-dir",
                             str(build_dir)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def wait_for_checkpoint(out: Path, p: subprocess.Popen, repeat: int, timeout: float = 120) -> dict:
    """The first checkpoint on disk (written whole, by rename) that holds a
    cell still short of its `repeat` runs. Not merely the first with runs: the
    native cells go first, and one checkpoint that came once they had all
    their runs, before the first Python run ended, held only finished cells;
    interrupted then, the run left no cell short (once in a fresh clone)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert p.poll() is None, "the run ended before it was interrupted"
        if out.exists():
            doc = json.loads(out.read_text())
            if any(len(c["runs"]) < repeat for c in doc["cells"]):
                return doc
        time.sleep(0.05)
    raise AssertionError("no checkpoint was written")


def session_left(sid: int) -> list[str]:
    left = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
                if int(stat[stat.rindex(")") + 2:].split()[3]) == sid:
                    left.append(d)
            except (OSError, ValueError):
                pass
    return left


def check_valid_partial(out: Path, repeat: int) -> dict:
    doc = json.loads(out.read_text())
    assert doc["partial"] is True
    assert doc["cells"]
    short = [c for c in doc["cells"] if len(c["runs"]) < repeat]
    assert short, "some cells have fewer runs than asked"
    for c in doc["cells"]:
        if c in short:
            assert (c["runs_done"], c["runs_asked"]) == (len(c["runs"]), repeat)
        else:
            assert "runs_done" not in c
        assert all(r["verdict"] != "error" for r in c["runs"]), c["id"]
    return doc


# A stop signal that lands inside concurrent.futures.wait(), between two of its
# lock acquisitions (made to, by a wait that sends it there): with the
# exception raised there, one future's lock stayed held, the worker finishing
# that future blocked for good and the run never ended (seen once in a loaded
# suite: a run that ignored its SIGINT for 60 s).
STOP_INSIDE_WAIT = r"""
import concurrent.futures._base as base, os, signal, time
from sigprobe.commands import options
from sigprobe.commands.run import run_native_cells
signal.signal(signal.SIGINT, options.raise_interrupted)

def enter(self):
    fs = list(self.futures)  # the order __exit__ releases them in
    fs[0]._condition.acquire()
    os.kill(os.getpid(), signal.SIGINT)  # its handler runs at the next line
    for f in fs[1:]:
        f._condition.acquire()
base._AcquireFutures.__enter__ = enter

class Sink:
    def add(self, cell, outcome):
        pass
try:
    run_native_cells([(i, 0) for i in range(50)], lambda c: time.sleep(0.05), 2, Sink())
except options.Interrupted as e:
    print("interrupted", e.signo)
"""


def test_a_stop_signal_inside_the_pools_wait_ends_the_run():
    r = subprocess.run([sys.executable, "-c", STOP_INSIDE_WAIT], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL, start_new_session=True)
    assert (r.returncode, r.stdout) == (0, f"interrupted {int(signal.SIGINT)}\n"), r.stderr[-2000:]


REPEAT = 20  # runs per cell: a few seconds of runs, interrupted after the first checkpoint


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
def test_an_interrupted_run_leaves_the_runs_made_so_far(sig, build_dir, tmp_path, sigprobe):
    out = tmp_path / "doc.json"
    p = start(build_dir, out, *LONG, *PACE, "--repeat", str(REPEAT), "-j", "2")
    try:
        wait_for_checkpoint(out, p, REPEAT)
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == (-sig if sig == signal.SIGKILL else 128 + sig), err
    doc = check_valid_partial(out, REPEAT)
    # After SIGKILL the runners end by their parent-death signal, cleaning up as they go.
    end = time.monotonic() + 20
    while session_left(p.pid) and time.monotonic() < end:
        time.sleep(0.05)
    assert session_left(p.pid) == [], "no runner or probe is left"
    leftovers = sorted(x.name for x in tmp_path.iterdir() if x.name.startswith("."))
    assert leftovers == [], f"no temporary file is left: {leftovers}"

    r = sigprobe("report", str(out), "--md", "-")
    assert r.returncode == 0, r.stderr
    assert "incomplete:" in r.stdout and f"of {REPEAT} runs" in r.stdout

    if sig == signal.SIGKILL:  # finished by --resume, into the same form as an uninterrupted run
        before = {c["id"]: c["runs"] for c in doc["cells"]}
        r = sigprobe("run", "--resume", str(out), timeout=600)
        assert r.returncode == 0, r.stderr
        done = json.loads(out.read_text())
        assert "partial" not in done
        assert len(done["cells"]) == 6
        for c in done["cells"]:
            assert len(c["runs"]) == REPEAT and "runs_done" not in c, c["id"]
            assert c["runs"][:len(before.get(c["id"], []))] == before.get(c["id"], []), "earlier runs are kept"
        assert set(done["settings"]) >= {"repeat", "jobs", "window_scale", "only", "fresh_kernels", "wall_s"}
        assert done["settings"]["only"] == LONG[1::2]


@pytest.fixture(scope="module")
def partial_doc(sigprobe, tmp_path_factory):
    """A real two-run document made partial, as a checkpoint holds it."""
    out = tmp_path_factory.mktemp("resume") / "doc.json"
    r = sigprobe("run", *ONE, "--repeat", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    cell = doc["cells"][0]
    cell["runs"] = cell["runs"][:1]
    cell.update(runs_done=1, runs_asked=2)
    doc["partial"] = True
    return doc


def write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def test_resume_runs_only_the_missing_repeats(sigprobe, partial_doc, tmp_path):
    doc = write(tmp_path / "p.json", partial_doc)
    r = sigprobe("run", "--resume", str(doc))
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stderr and "1 runs to go" in r.stderr
    done = json.loads(doc.read_text())
    cell = done["cells"][0]
    assert len(cell["runs"]) == 2 and "runs_done" not in cell and "partial" not in done
    assert cell["runs"][0] == partial_doc["cells"][0]["runs"][0]
    assert done["settings"]["window_ms"] == partial_doc["settings"]["window_ms"], "the document's window is kept"


def test_resume_of_a_complete_document_does_nothing(sigprobe, partial_doc, tmp_path):
    doc = dict(partial_doc)
    doc.pop("partial")
    path = write(tmp_path / "c.json", doc)
    before = path.read_bytes()
    r = sigprobe("run", "--resume", str(path))
    assert r.returncode == 0, r.stderr
    assert "nothing to resume" in r.stderr
    assert path.read_bytes() == before


def test_resume_refuses_another_interpreter(sigprobe, partial_doc, tmp_path):
    doc = json.loads(json.dumps(partial_doc))
    doc["machine"]["libc"] = "glibc 1.0"
    line = one_error_line(sigprobe("run", "--resume", str(write(tmp_path / "i.json", doc))))
    assert "cannot continue it here" in line and "libc" in line and "glibc 1.0" in line


def test_resume_refuses_another_selection(sigprobe, partial_doc, tmp_path):
    path = write(tmp_path / "s.json", partial_doc)
    line = one_error_line(sigprobe("run", "--resume", str(path), "--only", "linux/no-tty/none/kill"))
    assert "--only" in line and "differs from the document's" in line
    line = one_error_line(sigprobe("run", "--resume", str(path), "--repeat", "5"))
    assert "--repeat 5 differs from the document's 2" in line


def test_resume_of_a_broken_document_is_one_line(sigprobe, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "sigprobe-results/1", "cells": [')
    assert "not JSON" in one_error_line(sigprobe("run", "--resume", str(bad)))


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_results_files_honour_the_umask(umask, build_dir, tmp_path):
    out = tmp_path / "m.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "run", *ONE, "--repeat", "1", "--out", str(out),
                        "--build-dir", str(build_dir)], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       preexec_fn=lambda: os.umask(umask), timeout=300)
    assert r.returncode == 0, r.stderr
    for f in (out, out.with_suffix(".md")):
        assert f.stat().st_mode & 0o777 == 0o666 & ~umask, f


def test_a_killed_runs_temporary_directories_are_removed_by_the_next_run(sigprobe, tmp_path):
    # A temporary directory of this test's own (short enough for sockets, so
    # the runs' sockets go there too): in the shared /tmp, another run of the
    # suite, in parallel, would clean them up first (and say so itself).
    tmp = Path(tempfile.mkdtemp(prefix="sptmp", dir="/tmp"))
    dead = subprocess.Popen(["true"])
    dead.wait()  # reaped: its pid names no process now
    left = [Path(tempfile.mkdtemp(prefix=f"sigprobe-jupyter-{dead.pid}-", dir=tmp)),
            Path(tempfile.mkdtemp(prefix=f"spj{dead.pid}-", dir=tmp))]
    (left[0] / "ipython").mkdir()
    mine = Path(tempfile.mkdtemp(prefix=f"spj{os.getpid()}-", dir=tmp))  # a live owner's: kept
    try:
        r = sigprobe("run", *ONE, "--repeat", "1", "--out", str(tmp_path / "t.json"),
                     env=dict(os.environ, TMPDIR=str(tmp)))
        assert r.returncode == 0, r.stderr
        for d in left:
            assert not d.exists(), d
            assert f"removed {d}, left by a sigprobe run that was killed" in r.stderr
        assert mine.exists()
    finally:
        subprocess.run(["rm", "-rf", str(tmp)])


def test_sockets_go_in_a_short_tmpdir_and_in_tmp_otherwise(monkeypatch, tmp_path):
    from sigprobe import scratch
    short = Path(tempfile.mkdtemp(prefix="sptmp", dir="/tmp"))
    try:
        monkeypatch.setenv("TMPDIR", str(short))
        assert scratch.socket_base() == str(short)
        monkeypatch.setenv("TMPDIR", str(tmp_path / ("x" * scratch.SOCKET_BASE_MAX)))
        assert scratch.socket_base() == "/tmp"  # too long for a socket path
        monkeypatch.setenv("TMPDIR", "relative")
        assert scratch.socket_base() == "/tmp"
    finally:
        short.rmdir()


def test_a_flaky_cell_gets_more_runs_and_its_proportion(tmp_path, capsys):
    """A cell made flaky on purpose (handled every other run) is run up to
    FLAKY_RUNS times; a steady one keeps its repeat."""
    import itertools

    from sigprobe.catalog import parse_id
    from sigprobe.commands import run as main
    flaky, steady = parse_id("linux/no-tty/coin/kill"), parse_id("linux/no-tty/rock/kill")
    coin = itertools.cycle(["handled", "deferred"])

    def run_one(cell):
        verdict = next(coin) if cell is flaky else "handled"
        return {"id": cell.id, "host": cell.host, "strategy": cell.strategy, "delivery": cell.delivery,
                "verdict": verdict, "fired": [], "exit": {"kind": "exited", "code": 0}}

    args = main.RunSettings(repeat=3, jobs=1, window_scale=1.0, only=(), fresh_kernels=False, quiet=False,
                            out=tmp_path / "f.json", resume=None, resume_doc={})
    assert main.execute(args, [flaky, steady], "linux", {}, run_one, None) == 0
    cells = {c["id"]: c for c in json.loads(args.out.read_text())["cells"]}
    assert cells[flaky.id]["verdict"] == "flaky"
    assert cells[flaky.id]["counts"] == {"deferred": main.FLAKY_RUNS // 2, "handled": main.FLAKY_RUNS // 2}
    assert len(cells[steady.id]["runs"]) == 3 and "runs_done" not in cells[flaky.id]
    err = capsys.readouterr().err
    assert f"1 cells' runs disagree: up to {main.FLAKY_RUNS} runs each" in err
    assert f"[{main.FLAKY_RUNS} runs] {flaky.id}" in err


def test_a_cell_flaky_in_the_document_replaced_gets_all_its_runs_from_the_start(tmp_path, capsys):
    """Three runs of a cell that goes one way in four agree about half the
    time: a cell flaky in the document this run replaces gets FLAKY_RUNS runs
    even when its first three agree, so two runs of the matrix do not call it
    flaky once and steady the next; a steady cell keeps its repeat, and a
    broken document there is said in one line and ignored."""
    from sigprobe.catalog import parse_id
    from sigprobe.commands import run as main
    rare, steady = parse_id("linux/no-tty/rare/kill"), parse_id("linux/no-tty/rock/kill")
    count = {rare.id: 0}

    def run_one(cell):
        verdict = "handled"
        if cell is rare:
            count[rare.id] += 1
            verdict = "deferred" if count[rare.id] % 4 == 0 else "handled"  # runs 1-3 agree
        return {"id": cell.id, "host": cell.host, "strategy": cell.strategy, "delivery": cell.delivery,
                "verdict": verdict, "fired": [], "exit": {"kind": "exited", "code": 0}}

    out = tmp_path / "r.json"
    args = main.RunSettings(repeat=3, jobs=1, window_scale=1.0, only=(), fresh_kernels=False, quiet=True,
                            out=out, resume=None, resume_doc={})
    assert main.execute(args, [rare, steady], "linux", {}, run_one, None) == 0
    first = {c["id"]: c for c in json.loads(out.read_text())["cells"]}
    assert first[rare.id]["verdict"] == "handled" and len(first[rare.id]["runs"]) == 3  # a coin toss of three
    doc = json.loads(out.read_text())
    doc["cells"][0]["verdict"] = "flaky"  # as an earlier run found it
    out.write_text(json.dumps(doc))
    count[rare.id] = 0
    assert main.execute(args, [rare, steady], "linux", {}, run_one, None) == 0
    cells = {c["id"]: c for c in json.loads(out.read_text())["cells"]}
    assert cells[rare.id]["verdict"] == "flaky"
    assert cells[rare.id]["counts"] == {"handled": 15, "deferred": 5}
    assert len(cells[steady.id]["runs"]) == 3
    assert f"2 cells × 3 runs (1 flaky in {out}: {main.FLAKY_RUNS} runs each)" in capsys.readouterr().err
    out.write_text("{not json")
    assert main.execute(args, [rare, steady], "linux", {}, run_one, None) == 0
    assert "not JSON" in capsys.readouterr().err


def test_the_runs_of_a_cell_flaky_in_the_document_replaced_all_go_in_the_first_round(tmp_path):
    """Its extra runs are known before any run: they go to run_python with
    every other cell's first runs (the kernels started for those serve them
    too), not in a round after; more() then has nothing for it."""
    from sigprobe.catalog import parse_id
    from sigprobe.commands import run as main
    known = parse_id("linux/jupyter-message/rare/kernel-interrupt", kind="jupyter")
    steady = parse_id("linux/jupyter/rock/kernel-interrupt", kind="jupyter")
    rounds, asked = [], []

    def run_python(runs, sink, more=None):
        rounds.append(sorted((c.id, i) for c, i in runs))
        for cell, _ in runs:
            sink.add(cell, {"id": cell.id, "host": cell.host, "strategy": cell.strategy, "delivery": cell.delivery,
                            "verdict": "handled", "fired": [], "exit": {"kind": "none"}})
        if more:
            asked.append(more({c.id for c, _ in runs}))
        return {}

    out = tmp_path / "k.json"
    args = main.RunSettings(repeat=3, jobs=2, window_scale=1.0, only=(), fresh_kernels=False, quiet=True,
                            out=out, resume=None, resume_doc={})
    assert main.execute(args, [known, steady], "linux", {}, None, run_python) == 0
    doc = json.loads(out.read_text())
    doc["cells"][0]["verdict"] = "flaky"  # as an earlier run found it
    out.write_text(json.dumps(doc))
    rounds.clear()
    assert main.execute(args, [known, steady], "linux", {}, None, run_python) == 0
    assert rounds == [sorted([(known.id, i) for i in range(main.FLAKY_RUNS)] + [(steady.id, i) for i in range(3)])]
    assert asked[-1] == []
    cells = {c["id"]: c for c in json.loads(out.read_text())["cells"]}
    assert [len(cells[c.id]["runs"]) for c in (known, steady)] == [main.FLAKY_RUNS, 3]


def test_the_kernels_of_every_round_are_counted(tmp_path):
    """The flaky cells' extra runs start kernels of their own: the document
    counts those of both rounds, not only the last."""
    import itertools

    from sigprobe.catalog import parse_id
    from sigprobe.commands import run as main
    flaky = parse_id("linux/jupyter/coin/kernel-interrupt", kind="jupyter")
    coin = itertools.cycle(["handled", "deferred"])
    rounds = []

    def run_python(runs, sink, more=None):  # never asks `more`: the extra runs come in a round after
        for cell, _ in runs:
            sink.add(cell, {"id": cell.id, "host": cell.host, "strategy": cell.strategy, "delivery": cell.delivery,
                            "verdict": next(coin), "fired": [], "exit": {"kind": "none"}})
        rounds.append(len(runs))
        return {"kernels": {"started": 1, "reused": len(runs) - 1, "retried": 0, "lost": 0}}

    args = main.RunSettings(repeat=3, jobs=1, window_scale=1.0, only=(), fresh_kernels=False, quiet=True,
                            out=tmp_path / "k.json", resume=None, resume_doc={})
    assert main.execute(args, [flaky], "linux", {}, None, run_python) == 0
    assert rounds == [3, main.FLAKY_RUNS - 3]
    kernels = json.loads(args.out.read_text())["settings"]["kernels"]
    assert kernels == {"started": 2, "reused": main.FLAKY_RUNS - 2, "retried": 0, "lost": 0}


def test_the_jupyter_cells_extra_runs_come_as_soon_as_their_first_runs_are_in(tmp_path, capsys):
    """execute hands run_python a `more`: the kernel cells' extra runs are
    given when it asks (among the ids it names, not the python-* cells whose
    runs are still going), said on stderr, and not run again in the round
    after, which takes the other flaky cells to FLAKY_RUNS."""
    import itertools

    from sigprobe.catalog import parse_id
    from sigprobe.commands import run as main
    kernel = parse_id("linux/jupyter-message/coin/kernel-interrupt", kind="jupyter")
    plain = parse_id("linux/python-no-tty/coin/kill", kind="python")
    coins = {c.id: itertools.cycle(["handled", "deferred"]) for c in (kernel, plain)}
    rounds = []

    def outcome(cell):
        return {"id": cell.id, "host": cell.host, "strategy": cell.strategy, "delivery": cell.delivery,
                "verdict": next(coins[cell.id]), "fired": [], "exit": {"kind": "exited", "code": 0}}

    def run_python(runs, sink, more=None):
        rounds.append(sorted({c.id for c, _ in runs}))
        for c, _ in runs:
            if c is kernel:
                sink.add(c, outcome(c))
        if more:
            extra = more({kernel.id})
            assert {c.id for c, _ in extra} == {kernel.id} and len(extra) == main.FLAKY_RUNS - 3
            for c, _ in extra:
                sink.add(c, outcome(c))
        for c, _ in runs:
            if c is plain:
                sink.add(c, outcome(c))
        return {}

    args = main.RunSettings(repeat=3, jobs=2, window_scale=1.0, only=(), fresh_kernels=False, quiet=True,
                            out=tmp_path / "k.json", resume=None, resume_doc={})
    assert main.execute(args, [kernel, plain], "linux", {}, None, run_python) == 0
    cells = {c["id"]: c for c in json.loads(args.out.read_text())["cells"]}
    assert [len(cells[c.id]["runs"]) for c in (kernel, plain)] == [main.FLAKY_RUNS] * 2
    assert rounds == [sorted([kernel.id, plain.id]), [plain.id]]
    err = capsys.readouterr().err
    assert (f"1 Jupyter cells' runs disagree: up to {main.FLAKY_RUNS} runs each, {main.FLAKY_RUNS - 3} more runs, "
            "beside the other cells' first runs") in err
    assert f"1 cells' runs disagree: up to {main.FLAKY_RUNS} runs each, {main.FLAKY_RUNS - 3} more runs\n" in err
