"""The `sigprobe` command: list, run, check, bench, test, wheel, report, compare,
doctor, trace (one module each in commands/). Fatal errors become exit codes here and
only here: 2 bad input or a missing dependency, 3 a failed build, 130/143
interrupted by SIGINT/SIGTERM."""
from __future__ import annotations

import importlib
import signal
import sys

from . import __version__
from .commands import options
from .errors import SigprobeError

# Every subcommand, in --help's order: the module of commands/ that defines it, and its one-line help.
# Written here, not in the modules, so that --help imports none of them and a command only its own
# (cold `sigprobe doctor` is the notebook user's first command).
COMMANDS = {
    "list": ("list", "print every cell id for this platform, one a line"),
    "run": ("run", "run cells, print the matrix, write the results document"),
    "check": ("check", "run YOUR code under each host, interrupt it, and say whether, where and why not"),
    "bench": ("bench", "measure latency against a C baseline, cell overhead and matrix wall time"),
    "trace": ("trace", "watch the signals sent to one process and what the kernel did with them"),
    "test": ("test", "set up everything and run the whole test suite (CTest: Criterion + pytest + fuzzing + the "
                     "Wine leg), then the C tests again under ASan + UBSan (build-asan/); in a clone of the "
                     "repository"),
    "wheel": ("wheel", "build sigprobe's wheel from a clone of the repository: for this platform, or "
                       "(--platform windows-wine) for the Windows CPython under Wine, cross-built with MinGW-w64"),
    "report": ("report", "merge results documents into the reference (Markdown and HTML)"),
    "compare": ("report", "the cells whose verdict differs between two results documents"),
    "doctor": ("doctor", "what an interrupt would do to a live process, and why"),
}


class _Subcommands:
    """What a module's add_parsers(sub) is given: its parsers get their
    one-line help from COMMANDS."""

    def __init__(self, sub):
        self.sub = sub

    def add_parser(self, name, **kw):
        return self.sub.add_parser(name, help=COMMANDS[name][1], **kw)


def build_parser(argv: list[str] | None = None) -> options.ArgumentParser:
    """The parser for argv: the chosen subcommand's module imported and its
    options declared; every other subcommand only named, with its help. (The
    top-level options take no value, so the first word not starting with '-'
    is the subcommand.) Without argv: every subcommand's module."""
    p = options.ArgumentParser(prog="sigprobe", description=(
        "Which interrupt handler fires, under which host, and how fast: runs probe cells "
        "(platform/host/strategy/delivery) and writes a results document."))
    p.add_argument("--version", action="version", version=f"sigprobe {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=options.ArgumentParser)
    sub.required = True
    if argv is None:
        wanted = {module for module, _ in COMMANDS.values()}
    else:
        chosen = next((w for w in argv if not w.startswith("-")), None)
        wanted = {COMMANDS[chosen][0]} if chosen in COMMANDS else set()
    added = set()
    for name, (module, help) in COMMANDS.items():
        if module in wanted:
            if module not in added:
                # doctor reads the dispositions this process inherited when imported: here, before
                # main() installs sigprobe's own handlers.
                importlib.import_module(f"{__package__}.commands.{module}").add_parsers(_Subcommands(sub))
                added.add(module)
        else:
            sub.add_parser(name, help=help)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser(argv).parse_args(argv)
        for signo in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if signo is not None:
                signal.signal(signo, options.raise_interrupted)
        return args.func(args)
    except SigprobeError as e:
        print(f"sigprobe: {e}", file=sys.stderr)
        return e.exit_code
    except options.Interrupted as e:
        print(f"sigprobe: interrupted by {e}", file=sys.stderr)
        return 128 + e.signo
    except KeyboardInterrupt:
        return 130
