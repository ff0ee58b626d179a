"""The `sigprobe` command: list, run --only, the results document, bad input."""
import json

import pytest

from sigprobe.errors import BadInput
from sigprobe.results import document as results
from helpers import one_error_line


def test_list_prints_every_cell_once(sigprobe):
    r = sigprobe("list")
    assert r.returncode == 0, r.stderr
    ids = r.stdout.split()
    assert len(ids) == len(set(ids))
    assert all(i.count("/") == 3 and i.startswith("linux/") for i in ids)
    native = [i for i in ids if i.split("/")[1] in ("tty", "no-tty", "background")]
    assert len(native) == 3 * 7 * 4
    assert "linux/no-tty/sigaction/kill" in ids
    # 18 extension strategies (9, each also +nogil) in 4 python host/delivery pairs and 2 kernel
    # hosts (plus 2 same-cell variants there), and the 7 native probes as kernel children.
    assert len(ids) - len(native) == 18 * 4 + 20 * 2 + 7
    assert "linux/jupyter/c-handler-import+same-cell/kernel-interrupt" in ids
    assert "linux/python-no-tty/check-signals+nogil/killpg" in ids
    assert "linux/jupyter-child/sigaction/kernel-interrupt" in ids


def test_list_only_filters(sigprobe):
    r = sigprobe("list", "--only", "linux/background/*/kill")
    assert r.stdout.split() == [f"linux/background/{s}/kill" for s in
                                ("none", "signal", "sigaction", "sigwait-thread", "self-pipe", "signalfd", "all")]


@pytest.fixture(scope="module")
def small_run(sigprobe, tmp_path_factory):
    out = tmp_path_factory.mktemp("res") / "small.json"
    r = sigprobe("run", "--only", "linux/no-tty/sigaction/kill", "--only", "linux/background/none/*",
                 "--repeat", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return r, out, json.loads(out.read_text())


def test_run_writes_the_document_and_its_markdown(small_run):
    r, out, doc = small_run
    assert out.read_text().endswith("}\n")
    assert doc["schema"] == "sigprobe-results/1"
    assert doc["platform"] == "linux"
    assert doc["generated_at"].endswith("Z")
    for key in ("os", "kernel", "libc", "compiler", "cpu_count"):
        assert doc["machine"][key], key
    # The scheduler fact that moves the no-tty host's latency (README, `sigprobe bench`).
    assert doc["machine"]["sched_autogroup"] in ("on", "off", "not in this kernel")
    assert [c["id"] for c in doc["cells"]] == ["linux/no-tty/sigaction/kill"] + [
        f"linux/background/none/{d}" for d in ("tty-intr", "kill", "killpg", "sigterm")]
    md = out.with_suffix(".md").read_text()
    assert "| `sigaction` |" in md and "handled" in md
    assert "strategy" in r.stdout and "no-tty/kill" in r.stdout  # the matrix is printed


def test_cells_carry_verdict_counts_latency_and_runs(small_run):
    _, _, doc = small_run
    cell = doc["cells"][0]
    assert cell["verdict"] == "handled"
    assert cell["counts"] == {"handled": 2}
    assert set(cell["latency_us"]) == {"min", "median", "max"}
    assert cell["latency_us"]["min"] <= cell["latency_us"]["median"] <= cell["latency_us"]["max"]
    assert len(cell["runs"]) == 2
    for run in cell["runs"]:
        assert run["verdict"] == "handled"
        assert run["exit"] == {"kind": "exited", "code": 0}
        assert run["disposition_on_entry"] == "default"
        (f,) = run["fired"]
        assert f["handler"] == "sigaction" and f["signal"] == "SIGINT" and f["thread"] == "main"
        assert f["si_code"] == "SI_USER"
        assert f["si_pid"] == run["delivered"]["sender_pid"]  # the runner sent it
        assert f["latency_us"] > 0


def test_background_cells_are_ignored_or_killed(small_run):
    _, _, doc = small_run
    by = {c["id"].rsplit("/", 1)[1]: c for c in doc["cells"][1:]}
    assert by["kill"]["verdict"] == by["killpg"]["verdict"] == by["tty-intr"]["verdict"] == "ignored"
    assert by["sigterm"]["verdict"] == "killed"
    assert by["sigterm"]["runs"][0]["exit"] == {"kind": "signaled", "signal": "SIGTERM", "core": False}
    assert all(r["disposition_on_entry"] == "ignored" for r in by["kill"]["runs"])


@pytest.mark.parametrize("args, needle", [
    (["run", "--only", "linux/tyy/none/kill"], "unknown host 'tyy'"),
    (["run", "--only", "linux/tty/nope/kill"], "unknown strategy 'nope'"),
    (["run", "--only", "linux/tty/none/kil"], "unknown delivery 'kil'"),
    (["run", "--only", "windows/tty/none/kill"], "unknown platform 'windows'"),
    (["run", "--only", "linux/zzz*"], "matches no cell"),
    (["run", "--repeat", "0"], "--repeat"),
    (["run", "--repeat", "x"], "not a number"),
    (["run", "--frobnicate"], "unrecognized arguments"),
    (["explode"], "invalid choice"),
    (["run", "--out", "results.txt", "--only", "linux/tty/none/kill"], "must end in .json"),
])
def test_bad_input_is_one_line_and_exit_2(sigprobe, args, needle):
    line = one_error_line(sigprobe(*args))
    assert needle in line


def test_unknown_host_lists_the_valid_names(sigprobe):
    line = one_error_line(sigprobe("run", "--only", "linux/tyy/none/kill"))
    assert "valid: tty, no-tty, background" in line


def test_runner_rejects_unknown_cells_with_the_valid_names(build_dir):
    import subprocess
    r = subprocess.run([str(build_dir / "sigprobe-run"), "no-tty/sigactoin/kill"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "unknown strategy 'sigactoin'" in r.stderr and "sigwait-thread" in r.stderr
    assert r.stdout == ""


def outcome(verdict, handler=None, latency=None):
    o = {"id": "linux/x/y/z", "host": "x", "strategy": "y", "delivery": "z", "verdict": verdict, "fired": []}
    if handler:
        o["fired"] = [{"handler": handler, "latency_us": latency}]
    return o


def test_runs_that_disagree_make_a_flaky_cell_with_counts():
    cell = results.aggregate("linux/x/y/z", [outcome("handled", "a", 10.0), outcome("killed"),
                                             outcome("handled", "b", 30.0)])
    assert cell["verdict"] == "flaky"
    assert cell["counts"] == {"handled": 2, "killed": 1}
    assert cell["first_handler"] == {"a": 1, "b": 1}
    assert cell["latency_us"] == {"min": 10.0, "median": 20.0, "max": 30.0}


def test_runs_that_agree_keep_their_verdict():
    cell = results.aggregate("linux/x/y/z", [outcome("ignored")] * 3)
    assert cell["verdict"] == "ignored" and cell["counts"] == {"ignored": 3}
    assert "latency_us" not in cell


@pytest.mark.parametrize("text, needle", [
    ("{not json", "not JSON"),
    ('{"schema": "other/9", "cells": []}', "wrong schema"),
    ('{"schema": "sigprobe-results/1"}', '"cells" is missing'),
    ('{"schema": "sigprobe-results/1", "cells": [{"id": "a", "verdict": "maybe"}]}', "known verdict"),
    ('{"schema": "sigprobe-results/1", "cells": [', "not JSON"),
])
def test_broken_results_files_are_named_with_the_problem(tmp_path, text, needle):
    p = tmp_path / "r.json"
    p.write_text(text)
    with pytest.raises(BadInput) as e:
        results.load(p)
    assert str(p) in str(e.value) and needle in str(e.value)


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    p = tmp_path / "d.json"
    results.write_atomically(p, "{}\n")
    results.write_atomically(p, '{"a": 1}\n')
    assert p.read_text() == '{"a": 1}\n'
    assert [x.name for x in tmp_path.iterdir()] == ["d.json"]


def test_parallel_runs_give_the_same_verdicts_as_serial_ones(sigprobe, tmp_path):
    """-j N must not change a verdict: each cell has its own session, group and pty."""
    native = ["--only", "linux/tty/*", "--only", "linux/no-tty/*", "--only", "linux/background/*"]
    verdicts = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"j{jobs}.json"
        r = sigprobe("run", *native, "--repeat", "1", "-j", jobs, "--out", str(out))
        assert r.returncode == 0, r.stderr
        verdicts[jobs] = {c["id"]: c["verdict"] for c in json.loads(out.read_text())["cells"]}
    assert len(verdicts["1"]) == 84
    assert verdicts["1"] == verdicts["2"]


@pytest.mark.parametrize("content, said", [("1\n", "on"), ("0\n", "off"), (None, "not in this kernel")])
def test_the_autogroup_fact_reads_the_kernels_switch(tmp_path, monkeypatch, content, said):
    switch = tmp_path / "sched_autogroup_enabled"
    if content is not None:
        switch.write_text(content)
    monkeypatch.setattr(results, "AUTOGROUP", switch)
    assert results.sched_autogroup() == said


def test_bench_latency_figures_come_with_both_baselines(build_dir):
    """`sigprobe bench`'s latency part: the bare baseline in its tight loop and
    started like a run, each in the parent's session and in one of its own,
    beside sigprobe's cell, and the ratios (values are figures, not asserted:
    a bench, not a timed test)."""
    from sigprobe.commands import bench
    f = bench.latency_figures(build_dir / "sigprobe-run", build_dir, 3)
    for arm in ("loop", "loop_new_session", "fork_only", "fresh", "fresh_new_session"):
        s = f[f"baseline_{arm}_latency_us"]
        assert s["n"] == 3 and 0 < s["min"] <= s["median"], arm
    assert f["sigprobe_latency_us"]["n"] == 3
    for key in ("latency_ratio_median", "latency_ratio_median_like_for_like"):
        assert f[key] > 0
    assert "like for like" in bench.render_latency(f)


@pytest.mark.parametrize("flags", [[], ["--new-session"], ["--fork-only"]])
def test_the_baseline_signals_its_child_only_once_it_sleeps_in_pause(build_dir, flags):
    """The child's "ready" wakes the parent, which most often preempts it
    before pause(); a signal sent then wakes nobody. The handler says whether
    the child was in pause(), and the baseline fails a sample where it was
    not: without its wait for the child's sleep, one of the first 50 or so."""
    import subprocess
    r = subprocess.run([str(build_dir / "sigprobe-baseline"), "200", *flags], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.split()) == 200 and r.stderr == ""


def test_the_baseline_refuses_an_unknown_option(build_dir):
    import subprocess
    r = subprocess.run([str(build_dir / "sigprobe-baseline"), "1", "--new-sesion"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == "" and "unknown option --new-sesion" in r.stderr
