"""Setting up a checkout of sigprobe: system packages, the project's virtual
environment with sigprobe installed into it (editable), the extra C builds the
suite uses. Everything is checked first and installed only when missing, so a
second run costs a few milliseconds. An installed sigprobe needs none of it:
only the commands that build or test sigprobe itself come here.

scripts/sigprobe (the README's entry point) loads this package from src/ and
calls main(): it makes .venv, installs sigprobe into it and runs the command
there, so the suite runs what `pip install` gives users."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import paths
from .errors import BuildFailed, MissingDependency, SigprobeError

ROOT = paths.source_root()  # None when sigprobe is installed, not run from a checkout
_ROOT = ROOT or Path.cwd()  # only for the names below; checkout() guards their use
VENV = _ROOT / ".venv"
REQUIREMENTS = _ROOT / "requirements.txt"
DEFAULT_BUILD = _ROOT / "build"
# The interpreter of the cysignals subject: cysignals requires Python >= 3.12,
# the project's .venv is 3.11 (requirements-cysignals.txt says what it holds).
CYSIGNALS_VENV = _ROOT / ".venv-cysignals"
CYSIGNALS_REQUIREMENTS = _ROOT / "requirements-cysignals.txt"
ASAN_BUILD = _ROOT / "build-asan"


def checkout(what: str) -> Path:
    """The checkout's root, for what needs sigprobe's sources (building, testing)."""
    if ROOT is None:
        raise MissingDependency(f"{what} needs a clone of sigprobe's repository (this sigprobe is installed "
                                f"from a wheel; run it there with scripts/sigprobe)")
    return ROOT


def log(msg: str) -> None:
    print(f"sigprobe: {msg}", file=sys.stderr, flush=True)


# ---- system packages -------------------------------------------------------

def _has_pkgconfig(module: str) -> bool:
    if not shutil.which("pkg-config"):
        return False
    return subprocess.run(["pkg-config", "--exists", module]).returncode == 0


def _has_python_dev(python: str) -> bool:
    code = ("import sysconfig, os, sys; "
            "sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')) else 1)")
    return subprocess.run([python, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def _has_module(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def _has_libfuzzer() -> bool:
    """clang links -fsanitize=fuzzer (Debian splits the runtime into libclang-rt-N-dev)."""
    clang = shutil.which("clang-14") or shutil.which("clang")
    if not clang:
        return False
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "f.c"
        src.write_text("#include <stdint.h>\n#include <stddef.h>\n"
                       "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n")
        r = subprocess.run([clang, "-fsanitize=fuzzer,address,undefined", str(src), "-o", str(Path(d) / "f")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return r.returncode == 0


# What each command needs from Debian: (what, is it there?, packages).
# The checks are cheap; packages are installed only for the failing ones.
SYSTEM_NEEDS = {
    "build": [
        ("cmake", lambda: shutil.which("cmake") is not None, ["cmake"]),
        ("a C compiler", lambda: shutil.which("cc") is not None or shutil.which("gcc") is not None,
         ["gcc", "libc6-dev"]),
        ("make", lambda: shutil.which("make") is not None, ["make"]),
        ("pkg-config", lambda: shutil.which("pkg-config") is not None, ["pkg-config"]),
        ("Criterion", lambda: _has_pkgconfig("criterion"), ["libcriterion-dev"]),
        ("Python headers for the extension probe", lambda: _has_python_dev(sys.executable), ["python3-dev"]),
    ],
    # The whole test suite also cross-builds the Windows side and runs it under
    # Wine, and measures Debian's own Python and Jupyter generation.
    "test": [
        ("MinGW-w64", lambda: shutil.which("x86_64-w64-mingw32-gcc") is not None, ["gcc-mingw-w64-x86-64"]),
        ("Wine", lambda: shutil.which("wine") is not None and shutil.which("wineserver") is not None,
         ["wine", "wine64"]),
        ("Debian's ipykernel and jupyter_client", lambda: _has_module("/usr/bin/python3", "ipykernel")
         and _has_module("/usr/bin/python3", "jupyter_client"), ["python3-ipykernel", "python3-jupyter-client"]),
        ("Debian's Python headers", lambda: _has_python_dev("/usr/bin/python3"), ["python3-dev"]),
        # It also fuzzes (libFuzzer is clang's) and builds with the sanitizers.
        ("clang with libFuzzer", lambda: _has_libfuzzer(), ["clang", "libclang-rt-14-dev"]),
    ],
    # The report test opens the generated HTML page in headless Chromium.
    "browser": [
        ("Chromium for the HTML report test", lambda: shutil.which("chromium") is not None
         or os.path.exists("/usr/bin/chromium"), ["chromium"]),
    ],
}


def missing_packages(groups: list[str]) -> tuple[list[str], list[str]]:
    whats, pkgs = [], []
    for g in groups:
        for what, present, packages in SYSTEM_NEEDS.get(g, []):
            if not present():
                whats.append(what)
                pkgs += [p for p in packages if p not in pkgs]
    return whats, pkgs


# Another apt-get (a second sigprobe, unattended upgrades) may hold dpkg's lock: wait for it.
APT_GET = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]


def apt_install(pkgs: list[str], missing: str, why: str) -> None:
    """apt-get install as root (the package lists refreshed once if that fails);
    otherwise MissingDependency naming the exact command."""
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *pkgs]
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise MissingDependency(f"{missing}; install them with: sudo {' '.join(cmd)}")
    log(f"installing {', '.join(pkgs)} {why}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    quiet = {"stdout": subprocess.DEVNULL, "stdin": subprocess.DEVNULL}
    cmd = APT_GET + cmd[1:]
    if subprocess.run(cmd, env=env, **quiet).returncode != 0:
        # The package lists may be missing or stale on a fresh machine.
        subprocess.run([*APT_GET, "update", "-q"], env=env, **quiet)
        if subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL).returncode != 0:
            raise MissingDependency(f"apt-get could not install {' '.join(pkgs)}")


def ensure_system_packages(groups: list[str]) -> None:
    if not sys.platform.startswith("linux"):
        # The groups name Debian packages; elsewhere the build says what is
        # missing (the CI workflow installs it: brew on macOS, MSVC on Windows).
        return
    whats, pkgs = missing_packages(groups)
    if not pkgs:
        return
    apt_install(pkgs, f"missing {', '.join(whats)}", f"(for {', '.join(whats)})")
    still, _ = missing_packages(groups)
    if still:
        raise MissingDependency(f"still missing after apt-get: {', '.join(still)}")


# ---- the virtual environment -----------------------------------------------

def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def _requirements_stamp() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def ensure_venv() -> Path:
    """Creates .venv from requirements.txt, or refreshes it when the file changed."""
    stamp = VENV / ".sigprobe-requirements"
    want = _requirements_stamp()
    py = venv_python()
    if py.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return py
    if not py.exists():
        log("creating the virtual environment .venv/")
        try:
            import venv  # here: some Pythons (Windows' embeddable one) have no venv module
            venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        except Exception as e:  # ensurepip missing (Debian's python3 without python3-venv)
            raise MissingDependency(
                f"cannot create a virtual environment ({e}); install it with: "
                f"sudo apt-get install -y python3-venv") from None
    log("installing pinned Python requirements (pip)")
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "-r", str(REQUIREMENTS)], stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise MissingDependency(f"pip could not install {REQUIREMENTS.name} into {VENV}")
    stamp.write_text(want + "\n")
    return py


def find_python312() -> str | None:
    """A CPython 3.12 for .venv-cysignals/ (its pinned wheels are cp312):
    pyenv's, else python3.12 on PATH."""
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = sorted(pyenv.glob("3.12*/bin/python"), key=lambda p: [int(x) if x.isdigit() else -1
                                                                   for x in p.parts[-3].split(".")])
    candidates = [str(p) for p in reversed(found)] + [w for w in [shutil.which("python3.12")] if w]
    for exe in candidates:
        r = subprocess.run([exe, "-c", "import sys, venv; sys.exit(sys.version_info[:2] != (3, 12))"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        if r.returncode == 0:
            return exe
    return None


def cysignals_python() -> Path:
    return CYSIGNALS_VENV / "bin" / "python"


def ensure_cysignals_venv() -> Path | None:
    """.venv-cysignals/: a CPython 3.12 venv with requirements-cysignals.txt
    (cysignals, Cython, the kernel side), for the cysignals subject's tests
    and its results document. None, said once, when this machine has no 3.12.
    Like ensure_venv: a stamp of the requirements, so a second call is a stat."""
    checkout("setting up .venv-cysignals")
    py = cysignals_python()
    stamp = CYSIGNALS_VENV / ".sigprobe-requirements"
    want = hashlib.sha256(CYSIGNALS_REQUIREMENTS.read_bytes()).hexdigest()

    def ready() -> bool:
        return py.exists() and stamp.exists() and stamp.read_text().strip() == want

    if ready():
        return py
    # `sigprobe test` sets it up beside the suite, whose test asks for it too:
    # the second caller waits for the first, then finds it ready.
    DEFAULT_BUILD.mkdir(parents=True, exist_ok=True)
    with _exclusive(DEFAULT_BUILD / ".venv-cysignals.lock"):
        if ready():
            return py
        return _make_cysignals_venv(py, stamp, want)


@contextlib.contextmanager
def _exclusive(path: Path):
    """An exclusive lock on path, between processes (flock; none on Windows,
    where nothing sets the venv up concurrently)."""
    if os.name == "nt":
        yield
        return
    import fcntl
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _make_cysignals_venv(py: Path, stamp: Path, want: str) -> Path | None:
    if not py.exists():
        base = find_python312()
        if base is None:
            log("no CPython 3.12 here (pyenv's or python3.12 on PATH): the cysignals subject cannot be measured "
                "and its tests are skipped")
            return None
        log(f"creating .venv-cysignals/ from {base} (the cysignals subject)")
        r = subprocess.run([base, "-m", "venv", "--clear", str(CYSIGNALS_VENV)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise MissingDependency(f"{base} -m venv {CYSIGNALS_VENV} failed: {r.stdout.strip()[-500:]}")
    log(f"installing {CYSIGNALS_REQUIREMENTS.name} into .venv-cysignals/ (pip)")
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--require-hashes",
                        "--only-binary", ":all:", "-r", str(CYSIGNALS_REQUIREMENTS)], stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise MissingDependency(f"pip could not install {CYSIGNALS_REQUIREMENTS.name} into {CYSIGNALS_VENV}")
    stamp.write_text(want + "\n")
    return py


# What an editable install is built from: when none of it changed since the
# last install, running a command costs a stat() of each file, not a pip run.
# New or removed Python modules count too (the editable install maps each one).
_INSTALL_INPUTS = ("pyproject.toml", "requirements.txt", "CMakeLists.txt", "cmake", "harness", "probes", "bench",
                   "tests/CMakeLists.txt", "tests/c", "tests/fixtures", "tests/fuzz", "src")


def _install_stamp(settings: dict) -> str:
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for name in _INSTALL_INPUTS:
        top = ROOT / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for p in files:
            st = p.stat()
            # Python sources are served from the checkout: only their names matter.
            h.update(f"{p.relative_to(ROOT)}:{'' if p.suffix == '.py' else f'{st.st_size}:{st.st_mtime_ns}'}\n".encode())
    return h.hexdigest()


def dev_settings(py: Path) -> dict:
    """The editable install's scikit-build-core settings: the C build in build/
    (also CTest's tree: the C tests and pytest with this venv registered)."""
    return {"build-dir": str(DEFAULT_BUILD), "cmake.build-type": "Debug",
            "cmake.define.SIGPROBE_TESTS": "ON" if os.name != "nt" else "OFF",
            "cmake.define.SIGPROBE_VENV_PYTHON": str(py), "cmake.define.SIGPROBE_PYTHON": str(py),
            "cmake.define.SIGPROBE_WERROR": "ON" if ci() else "OFF"}


def ensure_dev_install() -> Path:
    """.venv with the pinned requirements and sigprobe installed into it from
    this checkout (editable: the Python sources stay here, the C parts are
    built in build/ and installed into the package). Returns its Python."""
    checkout("setting up .venv")
    py = ensure_venv()
    settings = dev_settings(py)
    stamp_file = VENV / ".sigprobe-install"
    want = _install_stamp(settings)
    if stamp_file.exists() and stamp_file.read_text().strip() == want:
        return py
    log("installing sigprobe into .venv (editable; the C side builds in build/)")
    env = {**os.environ, "CMAKE_GENERATOR": _same_generator(DEFAULT_BUILD)}
    cmd = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-build-isolation",
           "--no-deps", "-e", str(ROOT), *[f"--config-settings={k}={v}" for k, v in settings.items()]]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       env=env)
    if r.returncode != 0:
        raise BuildFailed(f"pip install -e {ROOT} failed:\n{r.stdout[-4000:]}")
    stamp_file.write_text(want + "\n")
    return py


def main(argv: list[str]) -> int:
    """scripts/sigprobe: the command inside .venv, set up first."""
    try:
        ensure_system_packages(["build"])
        py = ensure_dev_install()
    except SigprobeError as e:
        print(f"sigprobe: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    cmd = [str(py), "-m", "sigprobe", *argv]
    if os.name == "nt":  # no exec on Windows: run it and pass its status on
        return subprocess.call(cmd)
    os.execv(cmd[0], cmd)


# ---- the C build -----------------------------------------------------------

def pip_wheel(dest: Path, build_dir: Path, defines: dict | None = None, env: dict | None = None) -> Path:
    """The checkout's wheel, built by `pip wheel` with this venv's pinned
    scikit-build-core (no build isolation: nothing is downloaded) and moved
    into dest (replacing one of the same name); its C tree is kept in
    build_dir so that a second build only relinks what changed. defines: CMake
    -D settings; env: the build's environment. Both wheels are made this way:
    this platform's (`sigprobe wheel`) and the Windows one
    (runners/winpython.build_wheel)."""
    root = checkout("building the wheel")
    settings = [f"--config-settings=build-dir={build_dir}",
                *[f"--config-settings=cmake.define.{k}={v}" for k, v in (defines or {}).items()]]
    dest.mkdir(parents=True, exist_ok=True)
    log(f"building the wheel (its C tree in {paths.rel(build_dir)}/)")
    with tempfile.TemporaryDirectory(dir=dest, prefix=".sigprobe-wheel-") as tmp:
        r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
                            "--no-build-isolation", "--no-deps", "-w", tmp, *settings, str(root)],
                           env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildFailed(f"pip wheel failed:\n{(r.stdout + r.stderr)[-3000:]}")
        made = list(Path(tmp).glob("*.whl"))
        if len(made) != 1:
            raise BuildFailed(f"pip wheel made {len(made)} wheels, not one: {', '.join(p.name for p in made)}")
        return Path(shutil.move(str(made[0]), str(dest / made[0].name)))


def ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def ensure_build(build_dir: Path = DEFAULT_BUILD, quiet: bool = True, sanitize: bool = False) -> Path:
    """Configures (once) and builds the C side; make decides what is stale.
    sanitize: the C harness, probes and tests with ASan + UBSan, without the
    Python extension, pytest or the fuzz targets (built in the main tree)."""
    args = {
        "SIGPROBE_VENV_PYTHON": str(venv_python()) if venv_python().exists() and not sanitize else "",
        "SIGPROBE_PYTHON": str(venv_python()) if venv_python().exists() else sys.executable,
        "SIGPROBE_WERROR": "ON" if ci() else "OFF",
    }
    if os.name == "nt":
        # No Criterion for MSVC: the Windows-side tests are plain executables (tests/win).
        args["SIGPROBE_TESTS"] = "OFF"
    if sanitize:
        args.update(SIGPROBE_SANITIZE="ON", SIGPROBE_PYEXT="OFF", SIGPROBE_FUZZ="OFF")
    cache = build_dir / "CMakeCache.txt"
    configured = cache.exists() and all(_line(cache.read_text(), k) == v for k, v in args.items())
    out = subprocess.DEVNULL if quiet else None
    if not configured:
        cmd = ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", _same_generator(build_dir), *[f"-D{k}={v}" for k, v in args.items()]]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise BuildFailed(f"cmake configure failed:\n{r.stdout[-3000:]}")
    jobs = str(os.cpu_count() or 2)
    r = subprocess.run(["cmake", "--build", str(build_dir), "-j", jobs],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise BuildFailed(f"build failed:\n{r.stdout[-4000:]}")
    if out is None and r.stdout.strip():
        print(r.stdout, end="")
    return build_dir


def _same_generator(build_dir: Path) -> str:
    """The one CMake generator for every tree: Ninja when there is one (as
    scikit-build-core picks), else Makefiles. A tree configured with another
    (an older checkout's build/) has its cache removed first: CMake cannot
    switch a tree's generator, and the editable install and the suite's
    builds share build/."""
    want = "Ninja" if shutil.which("ninja") else "Unix Makefiles"
    cache = build_dir / "CMakeCache.txt"
    if cache.exists() and _line(cache.read_text(), "CMAKE_GENERATOR") not in (None, want):
        cache.unlink()
        shutil.rmtree(build_dir / "CMakeFiles", ignore_errors=True)
    return want


def _line(cache_text: str, key: str) -> str | None:
    for line in cache_text.splitlines():
        if line.startswith(key + ":"):
            return line.split("=", 1)[1]
    return None
