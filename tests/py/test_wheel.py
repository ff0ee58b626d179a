"""sigprobe as users get it: the wheel, built from this checkout, installed
into a brand-new virtual environment with no compiler and no cmake on PATH,
used from a directory outside the repository, then uninstalled."""
import contextlib
import ensurepip
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux wheel")


def run(argv, **kw):
    kw.setdefault("timeout", 600)
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built like `pip wheel .` with the pinned scikit-build-core of
    this venv (no build isolation: nothing is downloaded); its C build tree
    is kept in build-wheel/ so a second run only relinks what changed."""
    out = tmp_path_factory.mktemp("dist")
    r = run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q", "-w", str(out),
             f"--config-settings=build-dir={ROOT / 'build-wheel'}", str(ROOT)], timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (built,) = out.glob("sigprobe-*.whl")
    return built


@pytest.fixture(scope="module")
def env(tmp_path_factory, wheel):
    """(venv python, environment, working directory): a fresh venv with the
    wheel installed, PATH holding only the venv's bin/ (no cc, no cmake), the
    working directory outside the repository."""
    root = tmp_path_factory.mktemp("user")
    home = root / "venv"
    bindir = home / "bin"
    # pip from the interpreter's bundled wheel, not compiled to bytecode:
    # ensurepip compiles all of pip (about 30 s here).
    bundled = sorted(Path(ensurepip.__file__).parent.glob("_bundled/pip-*.whl"))
    venv.EnvBuilder(with_pip=not bundled).create(home)
    if bundled:
        r = run([sys.executable, "-m", "pip", "--python", str(bindir / "python"), "install", "-q", "--no-index",
                 "--no-compile", "--disable-pip-version-check", str(bundled[-1])])
        assert r.returncode == 0, r.stderr[-2000:]
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SIGPROBE_", "PYTHON", "VIRTUAL_ENV"))}
    e["PATH"] = str(bindir)
    assert shutil.which("cc", path=e["PATH"]) is None and shutil.which("cmake", path=e["PATH"]) is None
    cwd = root / "work"
    cwd.mkdir()
    t0 = time.perf_counter()
    r = run([str(bindir / "python"), "-m", "pip", "install", "--no-index", "--no-deps", "-q", str(wheel)],
            env=e, cwd=cwd)
    print(f"\npip install of the wheel ({wheel.stat().st_size / 1024:.0f} KiB): {time.perf_counter() - t0:.2f} s")
    assert r.returncode == 0, r.stderr
    return bindir / "python", e, cwd


def sigprobe(env, *args, **kw):
    python, e, cwd = env
    return run([str(python.parent / "sigprobe"), *args], env=e, cwd=cwd, **kw)


def test_the_wheel_holds_the_package_and_its_native_parts(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    sources = {str(p.relative_to(ROOT / "src")) for p in (ROOT / "src" / "sigprobe").rglob("*.py")}
    assert sources - set(names) == set()  # every module of the package
    for part in ("sigprobe/__main__.py", "sigprobe/cli.py", "sigprobe/remote/kernel_driver.py",
                 "sigprobe/ipython/magic.py", "sigprobe/_native/sigprobe-run",
                 "sigprobe/_native/probes/sigprobe-probe-sigaction"):
        assert part in names
    tag = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
    for module in ("sigprobe_pyext", "sigprobe_interruptible_bench"):  # the bench's module: `sigprobe bench`
        assert any(re.fullmatch(rf"sigprobe/_native/pyext/{module}\.{tag}-.*\.so", n) for n in names), module
    # No C test, fixture or fuzzer, no C source; the one header is the pattern shipped for extension authors.
    assert not [n for n in names if n.split("/")[-1].startswith(("test_", "fuzz_", "sigprobe-hostile", "sigprobe-sentinel"))
                or n.endswith(".c")]
    assert [n for n in names if n.endswith(".h")] == ["sigprobe/include/sigprobe/interruptible.h"]


def test_auditwheel_states_the_wheels_platform_tag(wheel):
    r = run([sys.executable, "-m", "auditwheel", "show", str(wheel)])
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    m = re.search(r'is consistent with the following platform tag: "([^"]+)"', text)
    assert m, text
    print(f"\nauditwheel: {wheel.name} is consistent with {m.group(1)}")
    assert m.group(1).endswith("_x86_64") or m.group(1).endswith("_aarch64")


def test_an_interpreter_it_was_not_built_for_is_refused_by_pips_tags(env, wheel, tmp_path):
    python, e, cwd = env
    other = "3.10" if sys.version_info[:2] != (3, 10) else "3.12"
    r = run([str(python), "-m", "pip", "install", "--dry-run", "--no-index", "--no-deps", "--only-binary=:all:",
             "--python-version", other, "--target", str(tmp_path / "t"), str(wheel)], env=e, cwd=cwd)
    assert r.returncode != 0 and "is not a supported wheel on this platform" in r.stderr, r.stderr


def test_version_list_and_module(env):
    r = sigprobe(env, "--version")
    assert r.returncode == 0 and r.stdout.strip() == "sigprobe 0.1.0", r.stderr
    r = sigprobe(env, "list")
    cells = r.stdout.split()
    assert r.returncode == 0, r.stderr
    assert "linux/no-tty/sigaction/killpg" in cells and "linux/jupyter/check-signals+nogil/kernel-interrupt" in cells
    python, e, cwd = env
    assert run([str(python), "-m", "sigprobe", "list"], env=e, cwd=cwd).stdout.split() == cells


def test_the_recommended_header_is_found_from_the_package(env):
    python, e, cwd = env
    r = run([str(python), "-c", "import sigprobe, os; print(os.path.isfile(os.path.join(sigprobe.get_include(), "
                                "'sigprobe', 'interruptible.h')))"], env=e, cwd=cwd)
    assert r.stdout.strip() == "True", r.stderr


def test_doctor_json(env):
    r = sigprobe(env, "doctor", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["signals"]["SIGINT"]["disposition"] in ("default", "ignored") and d["conclusions"]


@contextlib.contextmanager
def read_only(directory: Path):
    """A command prefix under which directory cannot be written: as root
    (whom file modes do not stop) a read-only bind mount in a mount namespace
    of the command's own; otherwise the modes, put back afterwards. The
    prefix first checks that writing there fails."""
    # Absolute paths: the command's PATH holds only the venv's bin/.
    sh, touch, mount, unshare = (shutil.which(c) for c in ("sh", "touch", "mount", "unshare"))
    d = shlex.quote(str(directory))
    check = f'! {touch} {d}/.sigprobe-w 2>/dev/null || exit 99; exec "$@"'
    if os.geteuid() == 0:
        yield [unshare, "--mount", "--propagation", "private", sh, "-c",
               f"{mount} --bind {d} {d} && {mount} -o remount,bind,ro {d} {d} && {check}", "sh"]
        return
    modes = {p: p.stat().st_mode for p in [directory, *directory.rglob("*")]}
    for p, mode in modes.items():
        p.chmod(mode & ~0o222)
    try:
        yield [sh, "-c", check, "sh"]
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def test_run_writes_to_the_working_directory_with_the_repositorys_verdicts_the_package_read_only(env, build_dir,
                                                                                                   tmp_path):
    python, e, cwd = env
    only = ["--only", "linux/no-tty/*", "--repeat", "1", "--quiet"]
    (package,) = python.parent.parent.glob("lib/python*/site-packages/sigprobe")
    with read_only(package) as prefix:
        r = run([*prefix, str(python.parent / "sigprobe"), "run", *only], env=e, cwd=cwd)
    assert r.returncode == 0, r.stderr
    installed = env[2] / "sigprobe-results" / "linux.json"
    assert "wrote sigprobe-results/linux.json" in r.stderr and installed.with_suffix(".md").is_file()
    repo = tmp_path / "repo.json"
    r = run([sys.executable, "-m", "sigprobe", "run", *only, "--build-dir", str(build_dir), "--out", str(repo)])
    assert r.returncode == 0, r.stderr
    verdicts = [{c["id"]: c["verdict"] for c in json.loads(p.read_text())["cells"]} for p in (installed, repo)]
    assert len(verdicts[0]) == 28 and verdicts[0] == verdicts[1]


def test_kernel_cells_without_ipykernel_say_how_to_install_it(env):
    python, _, cwd = env
    r = sigprobe(env, "run", "--only", "linux/jupyter/none/*", "--repeat", "1", "--quiet", "--out", "nokernel.json")
    assert r.returncode == 0, r.stderr
    (cell,) = json.loads((cwd / "nokernel.json").read_text())["cells"]
    assert cell["verdict"] == "unsupported"
    assert f"{python} -m pip install ipykernel jupyter_client" in " ".join(cell["reasons"])


@pytest.fixture(scope="module")
def kernel_env(env):
    """The same venv able to run a kernel: ipykernel and jupyter_client, pinned
    by the project's requirements, are the project venv's, on a path line of a
    .pth file and so after the venv's own site-packages (sigprobe is still the
    wheel's, checked below); downloading them again took over a minute."""
    python, e, cwd = env
    r = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], env=e, cwd=cwd)
    site = Path(r.stdout.strip())
    pth = site / "zz-project-kernel.pth"
    pth.write_text(sysconfig.get_path("purelib") + "\n")  # this interpreter is the project venv's
    try:
        r = run([str(python), "-c", "import ipykernel, sigprobe; print(sigprobe.__file__)"], env=e, cwd=cwd)
        assert r.returncode == 0, r.stderr[-2000:]
        assert Path(r.stdout.strip()).is_relative_to(site), r.stdout  # the wheel's sigprobe
        yield env
    finally:
        pth.unlink()


def test_magic_in_a_kernel_of_that_venv(kernel_env, tmp_path):
    """%load_ext sigprobe and %sigprobe selftest in a real kernel of the fresh
    venv: the extension probe comes from the wheel (no SIGPROBE_PYEXT_DIR)."""
    from jupyter_client.manager import KernelManager

    from helpers import answering_kernel
    from sigprobe.remote import kernel_driver as kd
    python, e, cwd = kernel_env
    spec = tmp_path / "kernels" / "fresh"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [str(python), "-m", "ipykernel_launcher", "-f",
                                                           "{connection_file}"],
                                                  "display_name": "fresh", "language": "python"}))

    def start(attempt):
        os.environ["JUPYTER_PATH"] = str(tmp_path)
        try:
            km = KernelManager(kernel_name="fresh")
            with open(tmp_path / f"kernel-{attempt}.log", "wb") as log:
                km.start_kernel(env=dict(e, JUPYTER_RUNTIME_DIR=str(tmp_path / "rt")), cwd=str(cwd),
                                stdout=log, stderr=log)
        finally:
            del os.environ["JUPYTER_PATH"]
        kc = km.client()
        kc.start_channels()
        return kd.Kernel(km, kc, None, log.name)

    k = answering_kernel(start, 120)
    km, kc = k.km, k.kc
    try:

        def execute(code):
            out = []
            reply = kc.execute_interactive(code, timeout=300, store_history=False, output_hook=lambda m: out.append(
                m["content"].get("text", "")) if m["msg_type"] == "stream" else None)
            return reply["content"], "".join(out)

        content, out = execute("import time as __t; __t0 = __t.perf_counter()\n%load_ext sigprobe\n"
                               "print(f'load_ext {__t.perf_counter() - __t0:.3f} s')")
        assert content["status"] == "ok", out
        print(f"\n{out.strip()}")
        content, out = execute("import os; print(os.environ.get('SIGPROBE_PYEXT_DIR'))")
        assert out.strip() == "None"
        content, out = execute("%sigprobe selftest --repeat 1 --json")
        assert content["status"] == "ok", out
        r = json.loads(out)
        assert "error" not in r, r
        verdicts = {line["strategy"]: line["verdict"] for line in r["summary"] if not line["nogil"]}
        assert verdicts["check-signals"] == "handled" and verdicts["c-handler-per-call"] == "handled"
        assert verdicts["none"] == "deferred"
        assert r["state_unchanged"] is True
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_uninstall_leaves_no_file_behind(env, request):
    # Last: the other tests of this module use the installed wheel.
    python, e, cwd = env
    r = run([str(python), "-m", "pip", "uninstall", "-y", "sigprobe"], env=e, cwd=cwd)
    assert r.returncode == 0, r.stderr
    left = [str(p) for p in python.parent.parent.rglob("*sigprobe*")]
    assert left == []
