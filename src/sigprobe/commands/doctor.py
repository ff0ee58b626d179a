"""`sigprobe doctor`: what an interrupt would do to a live process, and why.

The dispositions this process was started with are read here, at import,
because main() installs sigprobe's own SIGINT/SIGTERM handlers before any
command runs (cli.py builds the parser, importing this, first)."""
from __future__ import annotations

import json
import os
import sys

from .. import doctor as doctor_mod
from ..errors import BadInput
from . import options

DOCTOR_INHERITED = doctor_mod.snapshot_inherited()


def add_parsers(sub) -> None:
    d = sub.add_parser("doctor",
                       description="Reports per signal (INT, TERM, HUP, QUIT) whether it is default, ignored or "
                                   "caught, blocked or pending (per thread where threads differ); the process "
                                   "group, session, controlling terminal and foreground group; whether it is a "
                                   "Jupyter kernel and its interrupt_mode; then conclusions, each with the fact "
                                   "behind it. Default: this process, i.e. what a program started from this "
                                   "shell inherits.")
    d.add_argument("--pid", type=options.pid_arg, metavar="PID", help="the process to diagnose (default: this one)")
    options.add_json(d, "the facts and conclusions")
    d.add_argument("--watch", nargs="?", type=options.positive_float, const=10.0, metavar="SECONDS",
                   help="then trace, live, the signals sent to the process and what the kernel did with each "
                        "(Linux tracefs, root; default 10 s), with a summary")
    d.set_defaults(func=cmd_doctor)


def cmd_doctor(args) -> int:
    try:
        facts = doctor_mod.gather(args.pid, inherited=DOCTOR_INHERITED)
    except doctor_mod.NoSuchProcess as e:
        raise BadInput(str(e)) from None
    print(json.dumps(doctor_mod.report(facts), indent=2) if args.json else doctor_mod.render(facts))
    if args.watch is not None:
        if args.json:
            raise BadInput("--watch prints a live trace; it does not go with --json")
        sys.stdout.flush()
        from .. import trace as tracemod
        tracemod.watch(args.pid or os.getpid(), args.watch)
    return 0
