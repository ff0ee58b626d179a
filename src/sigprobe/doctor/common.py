"""What doctor reads and writes the same way on every platform: the errors,
Jupyter kernel detection (command line, connection file, kernelspec), and the
small formatting helpers both platforms' reports use."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


class NoSuchProcess(Exception):
    """The pid names no process (or it ended while being read)."""


def _read_or_problem(read, what: str, problems: list):
    try:
        return read()
    except PermissionError:
        problems.append(f"{what}: not readable (permission denied: another user's process, or ptrace is restricted)")
    except FileNotFoundError:
        problems.append(f"{what}: gone (the process or thread ended while being read)")
    except OSError as e:
        problems.append(f"{what}: not readable ({e.strerror})")
    return None


def _connection_file(cmdline: list[str]) -> str | None:
    for i, a in enumerate(cmdline):
        if a == "-f" and i + 1 < len(cmdline):
            return cmdline[i + 1]
        if a.startswith("--f="):
            return a[4:]
        if a.startswith("--IPKernelApp.connection_file="):
            return a.split("=", 1)[1]
    return None


def _kernel_dirs(env: dict, cmdline: list[str]) -> list[Path]:
    """Where jupyter_client looks for kernelspecs (jupyter_core.paths.jupyter_path),
    rebuilt from the kernel's own environment where it was readable."""
    dirs = []
    for p in (env.get("JUPYTER_PATH") or os.environ.get("JUPYTER_PATH", "")).split(os.pathsep):
        if p:
            dirs.append(Path(p))
    data = env.get("JUPYTER_DATA_DIR") or os.environ.get("JUPYTER_DATA_DIR")
    if data:
        dirs.append(Path(data))
    home = env.get("HOME") or os.path.expanduser("~")
    dirs.append(Path(home) / ".local/share/jupyter")
    if cmdline:
        exe = Path(cmdline[0])
        if exe.is_absolute():
            dirs.append(exe.parent.parent / "share/jupyter")
        dirs.append(exe.parent / "share/jupyter")  # Windows: python.exe sits in the prefix itself
    for var in ("APPDATA", "PROGRAMDATA"):  # jupyter_core's user and system paths on Windows
        if env.get(var) or os.environ.get(var):
            dirs.append(Path(env.get(var) or os.environ[var]) / "jupyter")
    dirs += [Path(sys.prefix) / "share/jupyter", Path("/usr/local/share/jupyter"), Path("/usr/share/jupyter")]
    return [d / "kernels" for d in dirs]


def _jupyter(facts: dict, problems: list) -> dict:
    cmdline, env = facts.get("cmdline", []), facts.get("_env", {})
    evidence = []
    if any("ipykernel_launcher" in a or a == "ipykernel" for a in cmdline):
        evidence.append("cmdline runs ipykernel_launcher")
    cf = _connection_file(cmdline)
    if cf and (cf.endswith(".json") and "kernel" in os.path.basename(cf)):
        evidence.append(f"cmdline names a connection file (-f {cf})")
    if "JPY_PARENT_PID" in env:
        evidence.append(f"environ has JPY_PARENT_PID={env['JPY_PARENT_PID']}")
    out = {"kernel": bool(evidence), "evidence": evidence}
    if not evidence:
        if not facts.get("environ_readable"):
            out["note"] = "environ not readable: JPY_PARENT_PID could not be checked"
        return out
    if cf:
        path = Path(cf)
        if not path.is_absolute() and facts.get("_cwd"):
            path = Path(facts["_cwd"]) / path
        out["connection_file"] = str(path)
        conn = _read_or_problem(lambda: json.loads(path.read_text()), "connection file", problems)
        if conn is not None and conn.get("kernel_name"):
            out["kernel_name"] = conn["kernel_name"]
    name = out.get("kernel_name")
    if name:
        for d in _kernel_dirs(env, cmdline):
            spec_file = d / name / "kernel.json"
            if spec_file.is_file():
                try:
                    spec = json.loads(spec_file.read_text())
                except (OSError, ValueError):
                    continue
                out["kernelspec"] = str(spec_file)
                if "interrupt_mode" in spec:
                    out["interrupt_mode"] = spec["interrupt_mode"]
                    out["interrupt_mode_source"] = f"kernelspec {spec_file}"
                else:
                    out["interrupt_mode"] = "signal"
                    out["interrupt_mode_source"] = f"jupyter_client's default: kernelspec {spec_file} does not set it"
                break
    if "interrupt_mode" not in out:
        out["interrupt_mode"] = "unknown"
        why = ("the connection file names no kernel" if not name
               else f"no kernelspec named {name!r} found") if cf else "no connection file on the command line"
        out["interrupt_mode_source"] = f"{why}; jupyter_client's default is signal"
    return out


def _kernel(f):
    return f.get("jupyter", {}).get("kernel", False)


def _fmt_members(ms, limit=5):
    s = ", ".join(f"{m['pid']} ({m['comm']})" for m in ms[:limit])
    return s + (f" and {len(ms) - limit} more" if len(ms) > limit else "")


def _kv(rows):
    width = max(len(k) for k, _ in rows)
    return [f"  {k:<{width}}  {v}" for k, v in rows]
