"""sigprobe's Windows wheel as a Windows user gets it, under Wine: cross-built
with MinGW-w64 for the Windows CPython the project runs there
(winpython.build_wheel), installed with that Python's own pip into a fresh
copy of it (no sigprobe, no link to this checkout, no SIGPROBE_* variable),
used from a Windows Jupyter kernel (`%load_ext sigprobe`, `%sigprobe doctor`,
`%sigprobe selftest`), then uninstalled."""
import ensurepip
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, wine_job
from sigprobe.runners import winpython

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="cross-built and run under Wine")
TAG = "cp311-cp311-win_amd64"


def _link_or_copy(src, dst):
    """Hard links where the file system allows: the interpreter and its
    Jupyter stack (with their bytecode: compiling it under Wine takes a
    minute) are only read; Python and pip write new files, never into an
    existing one."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _install(build, env, wheel: Path, home: Path) -> tuple[Path, dict, subprocess.CompletedProcess, float]:
    """A fresh copy of the project's Windows CPython with its Jupyter stack
    but without the .pth that links it to this checkout, pip in it (the
    bundled pip wheel of this Python's ensurepip: the embeddable distribution
    has none), the Windows wheel installed by that pip, no SIGPROBE_* or
    PYTHON* variable inherited: (python.exe, environment, pip's run, its time)."""
    shutil.copytree(winpython.home(build), home, copy_function=_link_or_copy,
                    ignore=shutil.ignore_patterns("sigprobe-checkout.pth", ".sigprobe-stamp"))
    site = home / "Lib" / "site-packages"
    assert not list(site.glob("*sigprobe*"))
    bundled = sorted(Path(ensurepip.__file__).parent.glob("_bundled/pip-*.whl"))
    # Compiled here (the same 3.11 bytecode): compiling pip's modules as it first runs took about 20 s under Wine.
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                        "--disable-pip-version-check", "--target", str(site), str(bundled[-1])],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-2000:]
    shutil.rmtree(site / "bin", ignore_errors=True)  # --target's POSIX scripts
    e = {k: v for k, v in env.items() if not k.startswith(("SIGPROBE_", "PYTHON", "VIRTUAL_ENV"))}
    python = home / "python.exe"
    t0 = time.perf_counter()
    r = run(python, e, ["-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check",
                        winpython.wine_path(wheel)])
    return python, e, r, time.perf_counter() - t0


def _wheel_user_kernel(build, env, pyext, tmp_path_factory) -> dict:
    """The wheel made as the README says (`sigprobe wheel --platform
    windows-wine`), installed into a user's Python; that Python's kernel run
    (tests/py/win/wheel_kernel.py), the command, and the uninstall: one job,
    each step's result for the tests below, which judge them; a failed build
    or install ends it."""
    out = {}

    def step(key, fn):
        """out[key] = fn(), and its wall time in out[key + "_s"]."""
        t0 = time.perf_counter()
        out[key] = fn()
        out[f"{key}_s"] = time.perf_counter() - t0
        return out[key]

    out["dest"] = dest = tmp_path_factory.mktemp("dist")
    r = step("build", lambda: subprocess.run([sys.executable, "-m", "sigprobe", "wheel", "--platform", "windows-wine",
                                              "--out", str(dest)], capture_output=True, text=True,
                                             stdin=subprocess.DEVNULL, timeout=900))
    if r.returncode != 0:
        return out
    out["user"] = python, e, r, _ = _install(build, env, Path(r.stdout.strip()),
                                             tmp_path_factory.mktemp("windows-user") / "python")
    if r.returncode != 0:
        return out
    step("kernel", lambda: run(python, e, [winpython.wine_path(ROOT / "tests" / "py" / "win" / "wheel_kernel.py")]))
    step("version", lambda: subprocess.run(winpython.command(str(python.parent / "Scripts" / "sigprobe.exe"),
                                                             "--version"),
                                           env=e, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                           timeout=300, cwd=python.parent.parent))
    out["list"] = run(python, e, ["-m", "sigprobe", "list"])
    # Last: every step above uses the installed wheel.
    out["installed"] = [str(p) for p in (python.parent / "Lib" / "site-packages").glob("sigprobe*")]
    step("uninstall", lambda: run(python, e, ["-m", "pip", "uninstall", "-y", "--disable-pip-version-check",
                                              "sigprobe"]))
    out["left"] = [str(p) for p in python.parent.rglob("*sigprobe*")]
    return out


# Started as soon as the Windows side is ready (conftest.winpy), beside the other modules' Wine work.
WINE_JOBS = {"windows_wheel": _wheel_user_kernel}


@pytest.fixture(scope="module")
def job(request) -> dict:
    return wine_job(request, "windows_wheel")


@pytest.fixture(scope="module")
def wheel(job) -> Path:
    r, dest = job["build"], job["dest"]
    assert r.returncode == 0, r.stderr[-3000:]
    built = Path(r.stdout.strip())
    assert built.parent == dest and built.is_file(), r.stdout
    print(f"\nbuilt {built.name} ({built.stat().st_size / 1024:.0f} KiB) in {job['build_s']:.1f} s "
          f"(beside the tests before it)")
    return built


@pytest.fixture(scope="module")
def user(job, wheel):
    """(python.exe, Wine environment) of the user's Python with the wheel installed (_install)."""
    python, e, r, took = job["user"]
    print(f"\npip install of {wheel.name} under Wine (the Windows Python's own pip): {took:.1f} s")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return python, e


def run(python: Path, env: dict, args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """python.exe ARGS under Wine, in a directory outside the repository."""
    return subprocess.run(winpython.command(str(python), *args), env={**env, "PYTHONUTF8": "1"},
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout,
                          cwd=python.parent.parent)


def test_the_wheel_holds_the_package_and_its_windows_parts(wheel):
    assert wheel.name == f"sigprobe-0.1.0-{TAG}.whl"
    z = zipfile.ZipFile(wheel)
    names = z.namelist()
    sources = {str(p.relative_to(ROOT / "src")) for p in (ROOT / "src" / "sigprobe").rglob("*.py")}
    assert sources - set(names) == set()
    for part in ("sigprobe/_native/sigprobe-run.exe", "sigprobe/_native/probes/sigprobe-probe-console-ctrl.exe",
                 "sigprobe/_native/probes/sigprobe-host.exe", "sigprobe/_native/probes/sigprobe-send.exe",
                 f"sigprobe/_native/pyext/sigprobe_pyext{winpython.EXT_SUFFIX}",
                 f"sigprobe/_native/pyext/sigprobe_pyext_import{winpython.EXT_SUFFIX}"):
        assert part in names
        data = z.read(part)
        # A PE image for x86-64: "MZ", then at e_lfanew "PE\0\0" and machine 0x8664.
        pe = int.from_bytes(data[0x3C:0x40], "little")
        assert data[:2] == b"MZ" and data[pe:pe + 6] == b"PE\0\0\x64\x86", part
    # The extension probe is linked against this interpreter's DLL; no POSIX file is in.
    assert b"python311.dll" in z.read(f"sigprobe/_native/pyext/sigprobe_pyext{winpython.EXT_SUFFIX}")
    native = [n for n in names if n.startswith("sigprobe/_native/") and not n.endswith("/")]
    assert native and all(n.endswith((".exe", ".pyd")) for n in native), native
    assert not [n for n in names if n.split("/")[-1].startswith(("test_", "sigprobe-hostile", "sigprobe-sentinel"))]
    wheel_meta = z.read("sigprobe-0.1.0.dist-info/WHEEL").decode()
    assert f"Tag: {TAG}" in wheel_meta.splitlines() and "Root-Is-Purelib: false" in wheel_meta.splitlines()


def test_this_linux_python_refuses_it_by_its_tags(wheel, tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--no-deps",
                        "--target", str(tmp_path / "t"), str(wheel)], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and "is not a supported wheel on this platform" in r.stderr, r.stderr


def test_the_command_from_the_wheel(job, user):
    r = job["version"]
    assert r.returncode == 0 and r.stdout.strip() == "sigprobe 0.1.0", r.stdout + r.stderr[-2000:]
    print(f"\nScripts\\sigprobe.exe --version under Wine: {job['version_s']:.1f} s")
    # `list` asks the wheel's runner (sigprobe-run.exe --list), which names the platform it finds itself
    # on: windows-wine here (whose kernel cells the Linux side runs: it lists the runner's cells only).
    r = job["list"]
    assert r.returncode == 0, r.stderr[-3000:]
    cells = r.stdout.split()
    assert {"windows-wine/console/console-ctrl/ctrl-c", "windows-wine/jupyter-launch/event/set-event"} <= set(cells)
    assert all(c.startswith("windows-wine/") for c in cells), cells


@pytest.fixture(scope="module")
def kernel_run(job, user):
    r = job["kernel"]
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    steps = ", ".join(f"{k} {v['wall_s']} s" for k, v in out.items() if isinstance(v, dict))
    print(f"\nthe Windows kernel's run: {job['kernel_s']:.1f} s (jupyter_client imported in "
          f"{out['imports_s']} s, the kernel ready in {out['kernel_start_s']} s; cells: {steps})")
    return out


def test_the_kernel_uses_the_installed_wheel(kernel_run, user):
    python, _ = user
    w = kernel_run["where"]
    assert w["status"] == "ok", w
    site = winpython.wine_path(python.parent / "Lib" / "site-packages").lower()
    assert w["out"]["sigprobe"].lower().startswith(site + "\\sigprobe\\"), w
    assert w["out"]["native"].lower() == site + "\\sigprobe\\_native" and w["out"]["checkout"] == "None", w
    assert w["out"]["pyext_dir"] is None
    assert kernel_run["pyext"]["out"].lower() == site + f"\\sigprobe\\_native\\pyext\\sigprobe_pyext{winpython.EXT_SUFFIX}"


def test_load_ext_and_doctor_in_a_windows_kernel(kernel_run):
    load = kernel_run["load_ext"]
    assert load["status"] == "ok", load
    print(f"\n%load_ext sigprobe in a Windows kernel under Wine: {load['out']} s")
    d = kernel_run["doctor"]
    assert d["status"] == "ok", d
    doc = d["out"]
    assert doc["platform"] == "win32" and doc["self"] is True
    assert doc["jupyter"]["kernel"] is True and doc["jupyter"]["interrupt_mode"] == "signal"
    ids = [c["id"] for c in doc["conclusions"]]
    assert "jpy-event-valid" in ids and "jupyter-windows-signal" in ids, ids


def test_selftest_in_a_windows_kernel(kernel_run):
    st = kernel_run["selftest"]
    assert st["status"] == "ok", st
    r = st["out"]
    assert isinstance(r, dict) and "error" not in r, r
    assert r["delivery"] == "set-event" and r["state_unchanged"] is True
    verdicts = {(row["strategy"], row["nogil"]): row["verdict"] for row in r["rows"]}
    # As measured in the project's own Windows kernel (test_windows_python.py): the poller needs the GIL.
    assert verdicts[("check-signals", True)] == "handled" and verdicts[("recommended", False)] == "handled"
    assert verdicts[("check-signals", False)] == "deferred" and verdicts[("none", False)] == "deferred"
    assert verdicts[("console-ctrl", False)] == "deferred"


def test_bad_input_is_one_line(tmp_path, monkeypatch):
    """--out that is a file; a building Python whose tags are not the Windows CPython's."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    r = subprocess.run([sys.executable, "-m", "sigprobe", "wheel", "--platform", "windows-wine", "--out",
                        str(not_a_dir)], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 2 and r.stderr == f"sigprobe: --out {not_a_dir}: not a directory\n", r.stderr
    from sigprobe.errors import MissingDependency
    monkeypatch.setattr(winpython, "VERSION", (3, 10))
    with pytest.raises(MissingDependency, match=r"^the Windows wheel is for CPython 3\.10 and takes its tags from the "
                                                r"Python building it: run this with a 3\.10, not 3\.11$"):
        winpython.build_wheel(tmp_path / "build", tmp_path / "dist")
    assert not (tmp_path / "build").exists()


def test_uninstall_leaves_no_file_behind(job, user):
    assert job["installed"]
    print(f"\npip uninstall under Wine: {job['uninstall_s']:.1f} s")
    r = job["uninstall"]
    assert r.returncode == 0, r.stderr[-2000:]
    assert job["left"] == []
