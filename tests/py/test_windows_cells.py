"""The Windows kernel cells in the catalog: real kernels only (jupyter,
jupyter-message), and under Wine unsupported with the reason, never run."""
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


def test_wine_kernel_cells_are_unsupported_without_running_anything():
    cell = Cell("windows-wine/jupyter/event-thread/kernel-interrupt", "windows-wine", "jupyter", "event-thread",
                "kernel-interrupt", kind="jupyter")
    # build and env are never touched for a kernel cell: nothing is run under Wine.
    out = wine.run_cell(None, {}, cell)
    assert out["verdict"] == "unsupported"
    assert out["reason"] == "no Windows Python under Wine here; runs on a real Windows runner"
    assert out["id"] == cell.id
