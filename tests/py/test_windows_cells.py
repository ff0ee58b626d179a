"""The Windows kernel cells in the catalog: real kernels only (jupyter,
jupyter-message); under Wine they run in the Windows CPython's kernels
(test_windows_python.py measures some), or are unsupported saying why."""
from sigprobe import catalog, paths
from sigprobe.catalog import Cell
from sigprobe.runners import python as pyhosts, wine


def pyext_strategies():
    """The extension probe's STRATEGIES, as the catalog reads them."""
    return catalog.pyext_strategies(paths.native_dir() / "pyext")


def test_windows_kernel_cells():
    for platform in ("windows", "windows-wine"):
        cells = pyhosts.python_cells(platform, pyext_strategies(), [])
        assert {c.host for c in cells} == {"jupyter", "jupyter-message"}
        assert {c.delivery for c in cells} == {"kernel-interrupt"}
        assert all(c.kind == "jupyter" and c.platform == platform for c in cells)
        strategies = {c.strategy for c in cells}
        assert {"event-thread", "console-ctrl", "event-thread+nogil", "check-signals", "self-pipe",
                "signalfd-thread", "c-handler-per-call", "c-handler-import+same-cell", "none"} <= strategies
        assert len(cells) == 2 * len(pyhosts.kernel_strategies(pyext_strategies())) == 2 * 20


def test_posix_catalog_unchanged():
    native = catalog.strategies(catalog.native_cells(paths.native_dir() / paths.RUNNER))
    cells = pyhosts.python_cells("linux", pyext_strategies(), native)
    assert {c.host for c in cells} == {"python-tty", "python-no-tty", "python-background", "jupyter",
                                       "jupyter-message", "jupyter-child"}
    # 9 extension strategies, each also +nogil: 18 in 4 python host/delivery pairs and 20 (the same-cell
    # variants too) in 2 kernel hosts; the 7 native probes as kernel children.
    assert len(cells) == 18 * 4 + 20 * 2 + 7


def test_without_a_windows_python_kernel_cells_are_unsupported(monkeypatch):
    """No network for the first download: each kernel cell says why, nothing runs."""
    from sigprobe.errors import MissingDependency
    from sigprobe.runners import winpython

    def offline(build):
        raise MissingDependency("could not download https://example.invalid/x: offline")

    monkeypatch.setattr(winpython, "ensure_pyext", offline)
    cell = Cell("windows-wine/jupyter/event-thread/kernel-interrupt", "windows-wine", "jupyter", "event-thread",
                "kernel-interrupt", kind="jupyter")
    got = []
    versions = wine.run_kernel_cells(None, {}, [(cell, 0)], 1.0, lambda c, o: got.append((c, o)))
    assert versions == {}
    (c, out), = got
    assert c is cell and out["verdict"] == "unsupported" and out["id"] == cell.id
    assert out["reason"] == ("no Windows Python under Wine: could not download https://example.invalid/x: "
                             "offline")


def test_a_cloned_prefix_has_a_server_of_its_own_and_the_same_verdicts(winpy, tmp_path):
    """wine.clone_prefix (the Wine runs' extra wineservers, the test jobs'
    own): the DLLs hard-linked, not copied; a cell run through the clone's
    server gives what it gives through the build tree's; the clone's server
    stops with its context."""
    import os
    import subprocess

    from sigprobe.catalog import parse_id
    build, env = winpy
    prefix = wine.clone_prefix(build, tmp_path / "prefix")
    dll = next((prefix / "drive_c" / "windows" / "system32").glob("*.dll"))
    assert dll.stat().st_nlink >= 2
    assert (prefix / "system.reg").stat().st_nlink == 1
    cell = parse_id("windows-wine/console/signal/ctrl-c")
    with wine.wineserver(build, prefix) as own:
        assert own["WINEPREFIX"] == str(prefix) != env["WINEPREFIX"]
        got = [wine.run_cell(build, e, cell) for e in (env, own)]
    assert [o["verdict"] for o in got] == ["handled", "handled"], got
    # Stopped: asking the clone's server to wait for its end returns at once.
    r = subprocess.run(["wineserver", "-w"], env={**os.environ, "WINEPREFIX": str(prefix)}, timeout=10)
    assert r.returncode == 0


def _wine_run(build, tmp_path, *args, stop_after_s=None):
    """`sigprobe run --platform windows-wine` as a user runs it (its own
    wineservers: the build tree's, whose session server it ends as it goes,
    and a clone), optionally sent SIGINT; returns (returncode, stderr, doc).
    Its scratch folders (the clone's among them) go in tmp_path (TMPDIR)."""
    import json
    import signal
    import subprocess
    import sys
    import time
    out = tmp_path / "wine.json"
    p = subprocess.Popen([sys.executable, "-m", "sigprobe", "run", "--platform", "windows-wine", "--out", str(out),
                          "-j", "2", *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env={**__import__("os").environ, "TMPDIR": str(tmp_path)})
    if stop_after_s is not None:
        time.sleep(stop_after_s)
        p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=300)
    return p.returncode, err, json.loads(out.read_text())


def test_a_wine_run_runs_its_kernels_beside_its_native_cells_on_two_servers(winpy, tmp_path):
    """The kernel cells (under the build tree's server) go on beside the
    native ones (spread over it and a cloned prefix's): every cell gets its
    known verdict, and the clone's folder is gone at the end."""
    build, _ = winpy
    rc, err, doc = _wine_run(build, tmp_path, "--repeat", "2", "--only", "windows-wine/console/signal/*",
                             "--only", "windows-wine/jupyter/none/*", "--only",
                             "windows-wine/jupyter/check-signals+nogil/*")
    assert rc == 0, err[-3000:]
    got = {c["id"]: c["verdict"] for c in doc["cells"]}
    assert got == {"windows-wine/console/signal/ctrl-c": "handled", "windows-wine/console/signal/ctrl-break": "error",
                   "windows-wine/console/signal/set-event": "lost", "windows-wine/console/signal/close": "unsupported",
                   "windows-wine/console/signal/terminate": "killed",
                   "windows-wine/jupyter/none/kernel-interrupt": "deferred",
                   "windows-wine/jupyter/check-signals+nogil/kernel-interrupt": "handled"}, got
    assert not list(tmp_path.glob("sigprobe-wine-*")), "the cloned prefix is removed"


def test_an_interrupted_wine_run_counts_no_cut_run_and_leaves_nothing(winpy, tmp_path):
    """SIGINT while kernel runs go on beside native ones: exit 130 at once, a
    partial document, no run the interrupt cut short counted, no Wine process
    of the run's cloned prefix left."""
    build, _ = winpy
    rc, err, doc = _wine_run(build, tmp_path, "--repeat", "3", "--only", "windows-wine/console/*",
                             "--only", "windows-wine/jupyter/none/*", "--only", "windows-wine/jupyter-message/none/*",
                             stop_after_s=8)
    assert rc == 130, err[-3000:]
    assert doc["partial"] is True and doc["cells"]
    for c in doc["cells"]:
        assert all("interrupted" not in (r.get("reason") or "") for r in c["runs"]), c["id"]
    assert _with_prefix_under(tmp_path) == [], "a Wine process of the run's cloned prefix is left"
    assert not list(tmp_path.glob("sigprobe-wine-*"))


def _with_prefix_under(folder) -> list[int]:
    """Processes (Wine's, wineservers included) whose WINEPREFIX is in folder."""
    import os
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                env = open(f"/proc/{d}/environ", "rb").read().split(b"\0")
            except OSError:
                continue
            if any(e.startswith(b"WINEPREFIX=" + str(folder).encode()) for e in env):
                found.append(int(d))
    return found
