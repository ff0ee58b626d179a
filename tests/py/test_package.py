"""The package's shape: no import cycle, no sys.path edit, remote/ apart,
one catalog (names have one source each), and the magic's bad input."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from helpers import one_error_line
from sigprobe import catalog, paths

PACKAGE = ROOT / "src" / "sigprobe"


def modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def package_imports(name: str, path: Path, known: dict) -> set[str]:
    """The package's modules that `name` imports, at any level of its code
    (a function-level import is still an edge: it runs)."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = name.split(".") if is_pkg else name.split(".")[:-1]
            if node.level:
                base = base[:len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            targets = [stem] + [f"{stem}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            # `from .x import y` imports x (and y when y is a module); a package imports its __init__.
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: package_imports(name, path, known) for name, path in known.items()}


def test_the_import_graph_has_no_cycle():
    g = graph()
    # A package's __init__ is imported by every submodule: an edge from a package to its own
    # submodule is how a package re-exports, and only a cycle if that submodule imports it back.
    state, cycles = {}, []

    def visit(n, stack):
        state[n] = "open"
        for m in sorted(g[n]):
            if m == "sigprobe":  # __init__ imports nothing of the package at import time
                continue
            if state.get(m) == "open":
                cycles.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m, stack + [m])
        state[n] = "done"

    for n in sorted(g):
        if n not in state:
            visit(n, [n])
    assert cycles == []


def test_the_package_init_imports_nothing_at_import_time():
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    assert not [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_remote_scripts_import_nothing_of_the_package_but_each_other():
    g = graph()
    for name, deps in g.items():
        if name.startswith("sigprobe.remote."):
            assert {d for d in deps if d not in ("sigprobe", "sigprobe.remote")} <= {
                m for m in g if m.startswith("sigprobe.remote.")}, name


# Runs the user's code (sigprobe check) as `python -c` and `python script.py`
# do: sys.path[0] is the working directory or the script's, for *their* imports.
RUNS_USER_CODE = PACKAGE / "remote" / "subject.py"


def test_nothing_edits_sys_path():
    edits = re.compile(r"sys\.path\s*(\.(insert|append|extend)|\[|\+=|=)")
    files = [*PACKAGE.rglob("*.py"), ROOT / "scripts" / "sigprobe", *(ROOT / "tests").rglob("*.py")]
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in files if p not in (Path(__file__), RUNS_USER_CODE)
                 for i, line in enumerate(p.read_text().splitlines(), 1) if edits.search(line)]
    assert offenders == []


def test_verdicts_are_the_c_sides():
    text = (ROOT / "harness" / "src" / "outcome.c").read_text()
    array = re.search(r"\{\s*(\"handled\".*?)\}", text, re.S).group(1)
    assert tuple(re.findall(r'"([^"]+)"', array)) == catalog.VERDICTS


def test_the_catalogs_names_are_kept_nowhere_else():
    """No literal list, tuple or set in the package holds three or more of the
    names the catalog owns (strategies from the runner's --list and the
    extension's STRATEGIES, verdicts from catalog.VERDICTS): such a copy
    would drift. catalog.py is the one place they are written (VERDICTS and
    the groups of names other modules ask about)."""
    native = catalog.native_cells(paths.native_dir() / paths.RUNNER)
    owned = {"strategy": set(catalog.strategies(native)) | set(catalog.pyext_strategies(paths.native_dir() / "pyext")),
             "verdict": set(catalog.VERDICTS)}
    assert len(owned["strategy"]) > 10  # the sources answered
    copies = []
    for p in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if not isinstance(node, (ast.List, ast.Tuple, ast.Set)):
                continue
            words = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            for kind, names in owned.items():
                if len(words & names) >= 3 and p != PACKAGE / "catalog.py":
                    copies.append(f"{p.relative_to(ROOT)}:{node.lineno} {kind}s {sorted(words & names)}")
    assert copies == []


def test_module_and_script_are_the_same_command():
    for argv in ([sys.executable, "-m", "sigprobe", "--version"], [str(Path(sys.executable).parent / "sigprobe"),
                                                                     "--version"]):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout.strip() == "sigprobe 0.1.0", r


# ---- the magic's bad input: one line each, in a real IPython shell ----------

SHELL = """
import sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "sigprobe")
ip.run_cell(sys.argv[1])
"""


def magic(line: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SHELL, line], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("line, says", [
    ("%sigprobe doctor --bogus", "unrecognized arguments: --bogus"),
    ("%sigprobe frobnicate", "invalid choice: 'frobnicate'"),
    ("%sigprobe selftest --repeat 0", "argument --repeat: must be at least 1: 0"),
    ("%sigprobe selftest --repeat x", "argument --repeat: not a number: 'x'"),
    ("%sigprobe", "needs a subcommand: doctor or selftest"),
    ("%sigprobe doctor --repeat 2", "--repeat: only for %sigprobe selftest"),
    ("%sigprobe selftest", "this IPython is not one"),
    ("%sigprobe doctor 'unclosed", "%sigprobe: No closing quotation"),
])
def test_magic_bad_input_is_one_line(line, says):
    r = magic(line)
    assert "Traceback" not in r.stdout + r.stderr
    lines = (r.stdout + r.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("UsageError: ") and says in lines[0], r.stdout + r.stderr


def test_magic_help_names_both_subcommands_and_the_cli_option_names():
    r = magic("%sigprobe --help")
    assert r.returncode == 0 and "Traceback" not in r.stderr
    for word in ("doctor", "selftest", "--json", "--repeat", "--loop-ms", "--delay-ms", "--import"):
        assert word in r.stdout


# ---- the command's cold start: a subcommand imports its own module only ---------

def test_a_command_imports_its_own_module_only():
    code = ("import sys\nfrom sigprobe import cli\ncli.main(['doctor', '--json'])\n"
            "print(sorted(m for m in sys.modules if m.startswith('sigprobe.commands.')), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "['sigprobe.commands.doctor', 'sigprobe.commands.options']"


def test_help_lists_every_subcommand_with_its_one_line_help():
    from sigprobe import cli
    r = subprocess.run([sys.executable, "-m", "sigprobe", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    flat = "".join(r.stdout.split())  # argparse wraps the lines
    for name, (_, help) in cli.COMMANDS.items():
        assert f"{name}{''.join(help.split())}" in flat, name


@pytest.mark.parametrize("name", ["list", "run", "check", "bench", "trace", "test", "wheel", "report", "compare",
                                  "doctor"])
def test_every_subcommand_is_defined_by_the_module_named_for_it(name, capsys):
    from sigprobe import cli
    assert set(cli.COMMANDS) == {"list", "run", "check", "bench", "trace", "test", "wheel", "report", "compare",
                                 "doctor"}
    with pytest.raises(SystemExit) as e:
        cli.build_parser([name]).parse_args([name, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    # Its own options, not a stand-in's bare usage (4 lines: usage, options:, -h).
    assert out.startswith(f"usage: sigprobe {name} ") and len(out.splitlines()) > 5, out
    cli.build_parser()  # all of them at once: no name defined twice
