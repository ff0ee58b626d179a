"""One call of the extension probe in a plain interpreter (the python-* hosts).

Run by the interpreter under test (standard library only), as the probe of
`sigprobe-run --exec`: argv is PYEXT_DIR STRATEGY NOGIL(0|1) LOOP_MS. The
extension reports ready/fired/done on the report channel; this script adds
one "result" event saying where the interrupt took effect:
  inside-call   KeyboardInterrupt raised from inside the native call
  after-return  KeyboardInterrupt raised once the call had returned
  nowhere       no KeyboardInterrupt at all
"""
import os
import sys

from pyext_loader import load_pyext  # beside this script, which runs by its path (kernel_driver.py
# is not imported: its imports would add ~0.1 s to every python-* run)


def main() -> int:
    pyext_dir, strategy, nogil, loop_ms = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
    # A private copy of the channel: the extension may close its own.
    channel = os.dup(int(os.environ["SIGPROBE_REPORT"]))
    where, exception = "nowhere", None
    try:
        if strategy == "c-handler-import":
            probe = load_pyext(pyext_dir, "sigprobe_pyext_import")  # installs its C handler now

            call = lambda: probe.run(loop_ms=loop_ms, nogil=nogil)  # noqa: E731
        else:
            probe = load_pyext(pyext_dir)

            call = lambda: probe.run(strategy, loop_ms=loop_ms, nogil=nogil)  # noqa: E731
        outcome = call()
        # Bytecodes after the call: a Python-level handler still pending from
        # the interrupt (default_int_handler) raises here at the latest.
        for _ in range(10000):
            pass
        if isinstance(outcome, dict) and outcome.get("unsupported"):
            return 0
    except KeyboardInterrupt as e:
        # The probe marks what it raised from inside its loop; anything else
        # was raised by the eval loop once the call had returned.
        where = "inside-call" if getattr(e, "sigprobe_inside_call", False) else "after-return"
        exception = "KeyboardInterrupt"
    # Written by hand, not with json: its import is a good share of this
    # script's start-up, paid on every run; the values are fixed words.
    line = '{"ev": "result", "where": "%s"%s}\n' % (where, f', "exception": "{exception}"' if exception else "")
    os.write(channel, line.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
