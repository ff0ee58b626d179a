"""`sigprobe check`: is this code interruptible, under which host, and why not."""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from .. import paths
from ..errors import BadInput
from . import options

NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def add_parsers(sub) -> None:
    from ..check import HOSTS
    c = sub.add_parser(
        "check",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Runs your code (-c, --script or --call) in a plain interpreter with a terminal (^C), without "
                    "one (kill), and in real Jupyter kernels in signal and message mode (with --platform "
                    "windows-wine: on a Windows console of its own, Ctrl+C, and in Windows kernels), interrupts it "
                    "--after ms "
                    "into the code, and reports per host: the verdict (handled = KeyboardInterrupt inside the call, "
                    "deferred = only when the call returned on its own, lost, hung, killed), where it landed, how "
                    "long the GIL was held around the interrupt, who owned SIGINT, and the fix.",
        epilog="examples:\n"
               "  sigprobe check -c 'import time; time.sleep(5)'\n"
               "  sigprobe check --call mylib.solver:fit --python .venv/bin/python\n"
               "  sigprobe check --script bench.py --size 1000 --out fit.json\n"
               "  sigprobe check --platform windows-wine -c 'import time; time.sleep(5)'\n"
               "exit status: 0 every host handled it, 1 some did not, 2 bad input")
    what = c.add_mutually_exclusive_group(required=True)
    what.add_argument("-c", dest="code", metavar="CODE", help="the code to run (as python -c)")
    what.add_argument("--script", nargs=argparse.REMAINDER, metavar="FILE [ARGS]",
                      help="a script and its arguments (the rest of the line)")
    what.add_argument("--call", metavar="MODULE:FUNCTION", help="import MODULE (in its own cell), then call FUNCTION()")
    from ..check.subjects import BUILTINS
    what.add_argument("--subject", choices=list(BUILTINS), metavar="NAME",
                      help="one of the calls everyone uses, built in: " + ", ".join(BUILTINS))
    c.add_argument("--setup", metavar="CODE", default="",
                   help="run first and not timed: imports, data (in a kernel, its own cell before the code's)")
    c.add_argument("--name", help="the subject's name in cell ids (default: the function, the script's stem or 'code')")
    c.add_argument("--python", metavar="PATH", help="the interpreter (or a venv's bin/python) to check with "
                                                    "(default: this one); the kernels are its ipykernel's")
    c.add_argument("--host", action="append", choices=list(HOSTS), dest="hosts",
                   help="only this host (repeatable; default: python-tty, python-no-tty, jupyter and "
                        "jupyter-message; with --platform windows-wine: console, Ctrl+C on the code's own "
                        "console, and the Windows kernel's jupyter and jupyter-message)")
    options.add_platform(c, "this machine's interpreter (--python) and its kernels")
    c.add_argument("--after", type=options.bounded_int(600_000, low=1), default=1000, metavar="MS",
                   help="interrupt this many ms after the code starts (default 1000)")
    c.add_argument("--timeout", type=options.positive_float, default=10.0, metavar="S",
                   help="the longest the code may run, interrupted or not (default 10 s); still running then: hung")
    c.add_argument("--repeat", type=options.bounded_int(100), default=1, metavar="N",
                   help="runs per host (default 1); runs that disagree make the host flaky")
    c.add_argument("-j", "--jobs", type=options.bounded_int(64), default=2, metavar="N",
                   help="runs at once (default 2)")
    c.add_argument("--out", type=Path, metavar="FILE", help="also write the results document here")
    options.add_json(c, "the results document")
    c.set_defaults(func=cmd_check)


def subject_from(args, python: str):
    from ..check import Subject
    if args.subject is not None:
        from ..check import cysignals_ext, subjects
        if args.setup:
            raise BadInput("--setup: a built-in --subject has its own")
        if args.name:
            raise BadInput("--name: a built-in --subject is named by itself")
        try:
            return subjects.subject(args.subject, python)
        except cysignals_ext.Unavailable as e:
            raise BadInput(f"--subject {args.subject}: {e}") from None
    if args.code is not None:
        if not args.code.strip():
            raise BadInput("-c: the code is empty")
        s = Subject("code", "code", code=args.code)
    elif args.script is not None:
        if not args.script:
            raise BadInput("--script needs a file")
        path = Path(args.script[0])
        if not path.is_file():
            raise BadInput(f"--script {path}: no such file")
        s = Subject(re.sub(r"[^A-Za-z0-9_.\-]", "_", path.stem)[:64] or "script", "script",
                    path=str(path.resolve()), args=args.script[1:])
    else:
        mod, sep, fn = args.call.partition(":")
        ident = r"[A-Za-z_][A-Za-z0-9_]*"
        if not sep or not re.fullmatch(rf"{ident}(\.{ident})*", mod) or not re.fullmatch(rf"{ident}(\.{ident})*", fn):
            raise BadInput(f"--call {args.call}: expected MODULE:FUNCTION, e.g. mylib.solver:fit")
        s = Subject(fn.rsplit(".", 1)[-1], "call", target=args.call)
    if args.name:
        if not NAME.match(args.name):
            raise BadInput(f"--name {args.name!r}: letters, digits, '_', '.', '-' only (it goes into cell ids)")
        s.name = args.name
    s.setup = args.setup
    return s


def _progress(args, total: int):
    done = []

    def progress(host, run):
        done.append(host)
        if not args.json:
            print(f"sigprobe: {len(done)}/{total} runs ({host})", file=sys.stderr, flush=True)
    return progress


def _check_out(args) -> None:
    if args.out is not None and not args.out.parent.is_dir():
        raise BadInput(f"--out {args.out}: the directory {args.out.parent} does not exist")


def cmd_check(args) -> int:
    from .. import check
    if args.after >= args.timeout * 1000:
        raise BadInput(f"--after {args.after} ms is not shorter than --timeout {args.timeout:g} s")
    if args.platform == "windows-wine":
        return finish(args, under_wine(args))
    if not sys.platform.startswith("linux"):
        raise BadInput(f"sigprobe check runs on Linux for now (this is {sys.platform})")
    python = args.python or sys.executable
    if not os.path.isfile(python) or not os.access(python, os.X_OK):
        raise BadInput(f"--python {python}: not an executable file")
    subject = subject_from(args, python)
    _check_out(args)
    hosts = list(dict.fromkeys(args.hosts or check.POSIX_HOSTS))
    windows = [h for h in hosts if h not in check.POSIX_HOSTS]
    if windows:
        raise BadInput(f"--host {windows[0]}: a Windows host (Ctrl+C on the code's own console), "
                       "run with --platform windows-wine")
    settings = check.Settings(python, hosts, args.after, args.timeout, args.repeat, args.jobs)
    doc = check.run_check(subject, settings, _progress(args, len(hosts) * args.repeat))
    return finish(args, doc)


def finish(args, doc: dict) -> int:
    """The document written (--out) and printed; the exit status."""
    from .. import check
    from ..results import document
    if args.out is not None:
        document.write_atomically(args.out, document.dumps(doc))
        print(f"sigprobe: wrote {paths.rel(args.out)}", file=sys.stderr)
    sys.stdout.write(document.dumps(doc) if args.json else check.text(doc))
    return 0 if all(c["verdict"] == "handled" for c in doc["cells"]) else 1


def wine_plan(args):
    """(subject, hosts) of a check under Wine, or BadInput: everything that
    can be refused before Wine is started."""
    from ..check import winhost
    from ..check.subjects import BUILTINS
    hosts = list(dict.fromkeys(args.hosts or winhost.HOSTS))
    posix = [h for h in hosts if h not in winhost.HOSTS]
    if posix:
        raise BadInput(f"--host {posix[0]}: a POSIX host, not one of --platform windows-wine's "
                       f"({', '.join(winhost.HOSTS)}: Ctrl+C on the code's own console, and the Windows kernel "
                       "interrupted by its event or by a message)")
    if args.python:
        raise BadInput("--python goes with the native platform: under --platform windows-wine the interpreter is "
                       "the project's Windows CPython (build-win/winpython)")
    if args.subject is not None and BUILTINS[args.subject].posix_only:
        raise BadInput(f"--subject {args.subject}: POSIX only ({BUILTINS[args.subject].what}), not run under "
                       "--platform windows-wine")
    subject = subject_from(args, "")
    if args.subject is not None:
        from ..check import subjects
        subject = subjects.subject(args.subject, "", windows=True)
    _check_out(args)
    return subject, hosts


def under_wine(args) -> dict:
    """`--platform windows-wine`: the Windows side built and the Windows
    CPython made if missing (as `sigprobe run --platform windows-wine`
    does), one wineserver for the check, stopped on every path."""
    from ..runners import wine, winpython
    wine_plan(args)
    build = wine.ensure_build()
    winpython.ensure(build)
    with wine.wineserver(build) as env:
        return check_under_wine(args, build, env)


def check_under_wine(args, build: Path, env: dict, cwd: str | None = None) -> dict:
    """The check's document under Wine, inside wine.wineserver(build) (env
    its environment); the code runs in cwd (default: this process's)."""
    from .. import check
    from ..check import winhost
    subject, hosts = wine_plan(args)
    settings = check.Settings(winhost.python_exe(build), hosts, args.after, args.timeout, args.repeat, args.jobs)
    return check.run_check(subject, settings, _progress(args, len(hosts) * args.repeat),
                           wine=winhost.wine_for(build, env, cwd))
