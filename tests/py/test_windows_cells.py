"""The Windows kernel cells in the catalog: real kernels only (jupyter,
jupyter-message); under Wine they run in the Windows CPython's kernels
(test_windows_python.py measures some), or are unsupported saying why."""
from sigprobe_cli import pyhosts, wine
from sigprobe_cli.cells import Cell


def test_windows_kernel_cells():
    for platform in ("windows", "windows-wine"):
        cells = pyhosts.python_cells(platform)
        assert {c.host for c in cells} == {"jupyter", "jupyter-message"}
        assert {c.delivery for c in cells} == {"kernel-interrupt"}
        assert all(c.kind == "jupyter" and c.platform == platform for c in cells)
        strategies = {c.strategy for c in cells}
        assert {"event-thread", "console-ctrl", "event-thread+nogil", "check-signals", "self-pipe",
                "signalfd-thread", "c-handler-per-call", "c-handler-import+same-cell", "none"} <= strategies
        assert len(cells) == 2 * len(pyhosts.KERNEL_STRATEGIES)


def test_posix_catalog_unchanged():
    cells = pyhosts.python_cells("linux")
    assert {c.host for c in cells} == {"python-tty", "python-no-tty", "python-background", "jupyter",
                                       "jupyter-message", "jupyter-child"}
    assert len(cells) == 107


def test_without_a_windows_python_kernel_cells_are_unsupported(monkeypatch):
    """No network for the first download: each kernel cell says why, nothing runs."""
    from sigprobe_cli import winpython
    from sigprobe_cli.errors import MissingDependency

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
