"""The helper process of `%sigprobe selftest` on Windows: it interrupts the
kernel the way jupyter_client does there, SetEvent on the kernel's
JPY_INTERRUPT_EVENT, from another process.

Usage: python -m sigprobe.remote.sender_win PIPE EVENT DELAY_MS
PIPE and EVENT are handle numbers this process inherited: the read end of the
probe's report pipe (SIGPROBE_REPORT=<write end> in the kernel) and the
kernel's interrupt event. For every run it waits for the probe's `ready`,
sleeps DELAY_MS, sets the event and prints {"ev":"delivered","t_ns":..}
(time.perf_counter_ns: QueryPerformanceCounter, the probe's clock), forwards
every probe event as {"ev":"probe","event":{..}} and prints {"ev":"closed"}
when the run ends (done, unsupported or error). Standard library only, and
relay() of sender.py. Stdin is its lifeline: EOF (the kernel side is done or
gone) ends it.
"""
import ctypes
import msvcrt
import os
import sys
import threading
import time

from .sender import relay, say

END_OF_RUN = ("done", "unsupported", "error")


def lifeline():
    sys.stdin.buffer.read()
    os._exit(0)


def set_event(k32, event):
    t = time.perf_counter_ns()
    if not k32.SetEvent(event):
        return {"ev": "error", "reason": f"SetEvent({event}) failed with error {ctypes.get_last_error()}"}
    return {"ev": "delivered", "t_ns": t, "delivery": "set-event", "sender_pid": os.getpid()}


def main():
    pipe, event, delay_s = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000
    k32 = ctypes.WinDLL("kernel32", use_last_error=True)
    k32.SetEvent.argtypes = [ctypes.c_void_p]
    threading.Thread(target=lifeline, daemon=True).start()
    reports = os.fdopen(msvcrt.open_osfhandle(pipe, os.O_RDONLY), "rb")
    say({"ev": "listening", "pid": os.getpid()})
    run = {"delivered": False}
    for line in reports:  # EOF: the kernel closed its end
        ev = relay(line, run, delay_s, lambda: set_event(k32, event))
        if ev is not None and ev.get("ev") in END_OF_RUN:
            run["delivered"] = False
            say({"ev": "closed"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
