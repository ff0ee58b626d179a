"""`sigprobe trace --pid PID`: the signals sent to one process and what the kernel did with them."""
from __future__ import annotations

from . import options


def add_parsers(sub) -> None:
    tr = sub.add_parser("trace",
                        description="Prints, live, every signal sent to PID, its threads and children: who sent "
                                    "what, and what the kernel did with it (delivered, ignored, already pending; "
                                    "a handler, the default action or nothing ran); then a summary. Linux, root.")
    tr.add_argument("--pid", type=options.pid_arg, required=True, metavar="PID", help="the process to watch")
    tr.add_argument("--seconds", type=options.positive_float, default=10.0, metavar="N",
                    help="how long to watch (default 10); the watch also ends when PID exits")
    tr.set_defaults(func=cmd_trace)


def cmd_trace(args) -> int:
    """trace.watch() (also for `doctor --watch`)."""
    from .. import trace as tracemod
    tracemod.watch(args.pid, args.seconds)
    return 0
