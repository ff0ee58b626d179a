"""The installed wheel's smoke test (cibuildwheel's test-command; any platform):
`sigprobe doctor --json`, a small `sigprobe run --only` selection, and the
magic in a real kernel of this interpreter. Standard library plus
jupyter_client; run from outside the checkout, against the installed package.
Exits non-zero, saying why, at the first thing that is wrong."""
import json
import os
import subprocess
import sys
import tempfile

from jupyter_client.manager import start_new_kernel

# One small selection per platform: a strategy whose handler fires for sure.
ONLY = "windows/new-group/console-ctrl/*" if os.name == "nt" else "*/no-tty/sigaction/*"


def sigprobe(*args):
    r = subprocess.run([sys.executable, "-m", "sigprobe", *args], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.exit(f"sigprobe {' '.join(args)}: exit {r.returncode}\n{r.stderr}")
    return r.stdout


def main():
    os.chdir(tempfile.mkdtemp(prefix="sigprobe-smoke-"))
    print(sigprobe("--version").strip())
    doctor = json.loads(sigprobe("doctor", "--json"))
    assert doctor["conclusions"], doctor
    sigprobe("run", "--only", ONLY, "--repeat", "1", "--quiet", "--out", "smoke.json")
    cells = json.load(open("smoke.json"))["cells"]
    assert cells and all(c["verdict"] not in ("error", "hung") for c in cells), cells
    print(f"run --only {ONLY}: " + ", ".join(f"{c['id']} {c['verdict']}" for c in cells))

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        def execute(code):
            out = []
            reply = kc.execute_interactive(code, timeout=300, output_hook=lambda m: out.append(
                m["content"].get("text", "")) if m["msg_type"] == "stream" else None)
            assert reply["content"]["status"] == "ok", (code, reply["content"], out)
            return "".join(out)

        execute("%load_ext sigprobe")
        json.loads(execute("%sigprobe doctor --json"))
        r = json.loads(execute("%sigprobe selftest --repeat 1 --json"))
        assert "error" not in r and r["summary"], r
        print("selftest: " + ", ".join(f"{s['strategy']}{'+nogil' if s['nogil'] else ''} {s['verdict']}"
                                       for s in r["summary"]))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


if __name__ == "__main__":
    main()
