"""Setting up what a command needs: system packages, the project's virtual
environment, the C build. Everything is checked first and installed only
when missing, so a second run costs a few milliseconds."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import BuildFailed, MissingDependency

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv"
REQUIREMENTS = ROOT / "requirements.txt"
DEFAULT_BUILD = ROOT / "build"
ASAN_BUILD = ROOT / "build-asan"


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


def ensure_system_packages(groups: list[str]) -> None:
    if not sys.platform.startswith("linux"):
        # The groups name Debian packages; elsewhere the build says what is
        # missing (the CI workflow installs it: brew on macOS, MSVC on Windows).
        return
    whats, pkgs = missing_packages(groups)
    if not pkgs:
        return
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *pkgs]
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise MissingDependency(
            f"missing {', '.join(whats)}; install them with: sudo {' '.join(cmd)}")
    log(f"installing {', '.join(pkgs)} (for {', '.join(whats)})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    quiet = {"stdout": subprocess.DEVNULL, "stdin": subprocess.DEVNULL}
    if subprocess.run(cmd, env=env, **quiet).returncode != 0:
        # The package lists may be missing or stale on a fresh machine.
        subprocess.run(["apt-get", "update", "-q"], env=env, **quiet)
        if subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL).returncode != 0:
            raise MissingDependency(f"apt-get could not install {' '.join(pkgs)}")
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
        log(f"creating the virtual environment {VENV.relative_to(ROOT)}/")
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


def reexec_in_venv(argv: list[str]) -> None:
    """Replaces this process with the same command under the venv's Python."""
    py = ensure_venv()
    if in_venv():
        return
    script = ROOT / "scripts" / "sigprobe"
    if os.name == "nt":  # no exec on Windows: run it and pass its status on
        sys.exit(subprocess.call([str(py), str(script), *argv]))
    os.execv(str(py), [str(py), str(script), *argv])


# ---- the C build -----------------------------------------------------------

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
        cmd = ["cmake", "-S", str(ROOT), "-B", str(build_dir), *[f"-D{k}={v}" for k, v in args.items()]]
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


def _line(cache_text: str, key: str) -> str | None:
    for line in cache_text.splitlines():
        if line.startswith(key + ":"):
            return line.split("=", 1)[1]
    return None
