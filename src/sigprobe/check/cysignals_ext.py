"""The cysignals subject's extension (cysignals_spin.pyx), built for the
interpreter measured: Cython and gcc run once per (interpreter, source,
cysignals and Cython versions), into build/ in a clone of sigprobe's
repository, else into the user's cache directory. An interpreter that cannot
have cysignals (Python < 3.12: cysignals 1.12 requires it) or lacks it is
Unavailable, with the reason; the subject's cells then say `unsupported`."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .. import paths
from ..errors import BuildFailed

SOURCE = Path(__file__).resolve().parent / "cysignals_spin.pyx"
MODULE = "cysignals_spin"
# cysignals 1.12 declares Requires-Python >= 3.12 (1.13: >= 3.13); nothing older installs.
MIN_PYTHON = (3, 12)
# What to install where cysignals is missing (requirements-cysignals.txt's versions).
INSTALL = "cysignals==1.12.6 Cython==3.3.1"

FACTS = ("import json, sys, sysconfig\n"
         "out = {'version': list(sys.version_info[:3]), 'include': sysconfig.get_paths()['include'],\n"
         "       'suffix': sysconfig.get_config_var('EXT_SUFFIX')}\n"
         "for mod in ('cysignals', 'Cython'):\n"
         "    try:\n"
         "        m = __import__(mod)\n"
         "        out[mod] = {'version': getattr(m, '__version__', None) or __import__('importlib.metadata').metadata"
         ".version(mod), 'dir': m.__path__[0]}\n"
         "    except Exception:\n"
         "        out[mod] = None\n"
         "print(json.dumps(out))\n")


class Unavailable(Exception):
    """The interpreter cannot run the subject; str() is the reason."""


def facts(python: str) -> dict:
    r = subprocess.run([python, "-c", FACTS], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise Unavailable(f"{python} could not run: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise Unavailable(f"{python} is not a Python interpreter (it did not run the question asked)") from None


def unavailable_reason(python: str, f: dict) -> str | None:
    version = ".".join(map(str, f["version"]))
    if tuple(f["version"][:2]) < MIN_PYTHON:
        return (f"cysignals needs Python >= {'.'.join(map(str, MIN_PYTHON))} (cysignals 1.12 requires it); "
                f"{python} is Python {version}. Measure it with --python PATH of a 3.12 interpreter with cysignals "
                f"(in a clone: .venv-cysignals/bin/python, which scripts/sigprobe test makes)")
    missing = [m for m in ("cysignals", "Cython") if not f.get(m)]
    if missing:
        return (f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed for {python} "
                f"(Python {version}); install with: {python} -m pip install {INSTALL}")
    return None


def _cache_root() -> Path:
    root = paths.source_root()
    if root is not None:
        return root / "build"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sigprobe"


def build(python: str) -> Path:
    """The extension built for python (built now if it is not there yet);
    Unavailable when python cannot have it."""
    f = facts(python)
    why = unavailable_reason(python, f)
    if why:
        raise Unavailable(why)
    source = SOURCE.read_bytes()
    key = hashlib.sha256(json.dumps([os.path.realpath(python), f["version"], f["cysignals"]["version"],
                                     f["Cython"]["version"]]).encode() + source).hexdigest()[:12]
    out = _cache_root() / f"subject-cysignals-{key}"
    target = out / (MODULE + f["suffix"])
    if target.exists():
        return target
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise BuildFailed("building the cysignals subject needs a C compiler (cc or gcc) on PATH")
    out.mkdir(parents=True, exist_ok=True)
    # Built in a directory of its own and renamed into place: runs side by
    # side may build it at once; each ends with the same complete file.
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        pyx, c_file, so = Path(tmp) / f"{MODULE}.pyx", Path(tmp) / f"{MODULE}.c", Path(tmp) / target.name
        pyx.write_bytes(source)
        steps = (
            [python, "-m", "cython", "-3", str(pyx), "-o", str(c_file)],
            # cysignals' headers (struct_signals.h, macros.h) are in its package directory.
            [cc, "-O2", "-fPIC", "-shared", "-w", "-I", f["include"], "-I", f["cysignals"]["dir"], str(c_file),
             "-o", str(so)],
        )
        for cmd in steps:
            r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                raise BuildFailed(f"building the cysignals subject for {python} failed ({Path(cmd[0]).name} "
                                  f"{'-m cython' if cmd[1:3] == ['-m', 'cython'] else ''}):\n"
                                  f"{(r.stdout + r.stderr)[-2000:]}")
        os.replace(so, target)
    return target


def setup(python: str) -> str:
    """The subject's setup code for python: the extension loaded from its
    file (sys.path is the user's: nothing is added to it), spin imported."""
    return (f"import importlib.util\n"
            f"spec = importlib.util.spec_from_file_location({MODULE!r}, {str(build(python))!r})\n"
            f"{MODULE} = importlib.util.module_from_spec(spec)\n"
            f"spec.loader.exec_module({MODULE})\n"
            f"spin = {MODULE}.spin")
