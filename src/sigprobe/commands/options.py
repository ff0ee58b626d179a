"""What the subcommands share: the parser class whose errors are one line,
the option types, the options several subcommands take (declared once here),
and Interrupted (SIGINT/SIGTERM while a command runs)."""
from __future__ import annotations

import argparse
import math
import signal
from pathlib import Path

from .. import paths
from ..errors import BadInput


class Interrupted(Exception):
    def __init__(self, signo: int):
        super().__init__(signal.Signals(signo).name)
        self.signo = signo


# SIGINT/SIGTERM/SIGHUP raise Interrupted in the main thread, wherever it is
# (cli.main installs raise_interrupted) — except inside interrupts_deferred(),
# where the signal is noted and raised as the block ends. Library code that
# holds locks across Python lines must not be cut short: concurrent.futures.
# wait() takes each future's lock in a loop, and an exception between two of
# them leaves one held, so the worker finishing that future blocks for good
# and the pool never shuts down (a run that ignored its SIGINT, seen once).
_deferring = 0
_pending: int | None = None


def raise_interrupted(signo, frame):
    global _pending
    if _deferring:
        _pending = _pending or signo
        return
    raise Interrupted(signo)


class interrupts_deferred:
    """A block of the main thread that a stop signal does not cut short: the
    signal is raised as Interrupted when the block ends."""

    def __enter__(self):
        global _deferring
        _deferring += 1

    def __exit__(self, *exc):
        global _deferring, _pending
        _deferring -= 1
        if not _deferring and _pending is not None:
            signo, _pending = _pending, None
            raise Interrupted(signo)


class ArgumentParser(argparse.ArgumentParser):
    """Bad flags are BadInput (one line, exit 2), like every other bad input."""

    def error(self, message: str):
        raise BadInput(f"{message} (see `sigprobe {self.prog.split()[-1]} --help`)"
                       if " " in self.prog else f"{message} (see `sigprobe --help`)")


def bounded_int(limit: int, low: int = 1):
    """A whole number from low to limit (a typo like 1000000 fails at once
    instead of running for days)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}: {text}")
        if v > limit:
            raise argparse.ArgumentTypeError(f"must be at most {limit}: {text}")
        return v

    return parse


# Process ids: anything a pid_t holds; whether it exists is checked where it is used.
pid_arg = bounded_int(2**31 - 1)


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number: {text}")
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    if v > 1000:
        raise argparse.ArgumentTypeError(f"must be at most 1000: {text}")
    return v


def build_dir_arg(text: str) -> Path:
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise argparse.ArgumentTypeError(f"not a directory: {text}")
    return p


def add_only(p: argparse.ArgumentParser, example: str = "") -> None:
    p.add_argument("--only", action="append", metavar="GLOB",
                   help=f"only cells matching GLOB{example} (repeatable; default: all but the subjects; "
                        "`subjects` or a GLOB with `code:` selects those)")


def add_platform(p: argparse.ArgumentParser, native_help: str, default: str | None = "native") -> None:
    p.add_argument("--platform", choices=["native", "windows-wine"], default=default,
                   help=f"native: {native_help} (default); windows-wine: the Windows cells cross-built with "
                        "MinGW-w64 and run under Wine (needs a clone of the repository)")


def add_build_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--build-dir", type=build_dir_arg, metavar="DIR",
                   help="where the C runner and probes are (default: the ones installed in the package, "
                        f"{paths.native_dir()})")


def add_json(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON")
