"""Fatal errors, one class per exit code; main() maps them (cibuildwheel style)."""


class SigprobeError(Exception):
    """A fatal error with a one-line message and an exit code."""

    exit_code = 1


class BadInput(SigprobeError):
    """Unknown cell, strategy, flag or value; a broken results file."""

    exit_code = 2


class MissingDependency(SigprobeError):
    """Something the command needs is not installed and cannot be installed here."""

    exit_code = 2


class BuildFailed(SigprobeError):
    """The C build failed."""

    exit_code = 3
