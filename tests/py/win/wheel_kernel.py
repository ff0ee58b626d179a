"""Run by a Windows Python under Wine into which sigprobe's Windows wheel was
installed (tests/py/test_wheel_windows.py): a real Windows Jupyter kernel of
that Python, started by jupyter_client, then inside it `%load_ext sigprobe`
(timed), `%sigprobe doctor --json` and `%sigprobe selftest --repeat 1 --json`,
with the extension probe the wheel installed (no SIGPROBE_PYEXT_DIR). Prints
one JSON document.

    python wheel_kernel.py
"""
import time

T0 = time.perf_counter()

import json  # noqa: E402 (after T0: the imports' time is part of what is reported)
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

from jupyter_client.manager import KernelManager  # noqa: E402


# execute(kc, code): beside this script, read by its path: the embeddable
# Windows CPython leaves a script's folder off sys.path (python311._pth).
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel_cells.py"), encoding="utf-8") as f:
    exec(compile(f.read(), f.name, "exec"))


def cell(kc, code):
    t0 = time.perf_counter()
    status, text, ename = execute(kc, code)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = text
    return {"status": status, "ename": ename, "out": parsed, "wall_s": round(time.perf_counter() - t0, 2)}


def main():
    out = {"imports_s": round(time.perf_counter() - T0, 2)}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["JUPYTER_PATH"] = tmp
        os.environ["JUPYTER_RUNTIME_DIR"] = os.path.join(tmp, "runtime")
        os.environ["IPYTHONDIR"] = os.path.join(tmp, "ipython")
        spec_dir = os.path.join(tmp, "kernels", "wheel")
        os.makedirs(spec_dir)
        with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
            json.dump({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                       "display_name": "wheel", "language": "python"}, f)
        t0 = time.perf_counter()

        def start():
            km = KernelManager(kernel_name="wheel")
            km.start_kernel(env=dict(os.environ))
            kc = km.client()
            kc.start_channels()
            return km, kc

        km, kc = ready(start)
        try:
            out["kernel_start_s"] = round(time.perf_counter() - t0, 2)
            out["where"] = cell(kc, "import json, os, sigprobe, sigprobe.paths\n"
                                    "print(json.dumps({'sigprobe': sigprobe.__file__, "
                                    "'native': str(sigprobe.paths.native_dir()), "
                                    "'checkout': str(sigprobe.paths.source_root()), "
                                    "'pyext_dir': os.environ.get('SIGPROBE_PYEXT_DIR')}))")
            out["load_ext"] = cell(kc, "import time as __t, json as __j\n__t0 = __t.perf_counter()\n"
                                       "%load_ext sigprobe\n"
                                       "print(__j.dumps(round(__t.perf_counter() - __t0, 3)))")
            out["doctor"] = cell(kc, "%sigprobe doctor --json")
            out["selftest"] = cell(kc, "%sigprobe selftest --repeat 1 --json")
            out["pyext"] = cell(kc, "import sys, json\nprint(json.dumps(getattr(sys.modules.get('sigprobe_pyext'), '__file__', None)))")
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
