"""The `sigprobe` command: list, run, check, bench, test, report, compare, doctor,
trace (one module each in commands/). Fatal errors become exit codes here and
only here: 2 bad input or a missing dependency, 3 a failed build, 130/143
interrupted by SIGINT/SIGTERM."""
from __future__ import annotations

import signal
import sys

from . import __version__
# doctor first: it reads the dispositions this process inherited at import,
# before main() installs sigprobe's own handlers.
from .commands import bench, check, doctor, list as list_cmd, options, report, run, test, trace
from .errors import SigprobeError

COMMANDS = (list_cmd, run, check, bench, trace, test, report, doctor)


def build_parser() -> options.ArgumentParser:
    p = options.ArgumentParser(prog="sigprobe", description=(
        "Which interrupt handler fires, under which host, and how fast: runs probe cells "
        "(platform/host/strategy/delivery) and writes a results document."))
    p.add_argument("--version", action="version", version=f"sigprobe {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=options.ArgumentParser)
    sub.required = True
    for command in COMMANDS:
        command.add_parsers(sub)
    return p


def _raise_interrupted(signo, frame):
    raise options.Interrupted(signo)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
        for signo in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if signo is not None:
                signal.signal(signo, _raise_interrupted)
        return args.func(args)
    except SigprobeError as e:
        print(f"sigprobe: {e}", file=sys.stderr)
        return e.exit_code
    except options.Interrupted as e:
        print(f"sigprobe: interrupted by {e}", file=sys.stderr)
        return 128 + e.signo
    except KeyboardInterrupt:
        return 130
