"""The helper process of `%sigprobe selftest`: it interrupts the kernel the way
its manager does, from outside the kernel's process group.

Usage: python sender.py SOCKET PID PGID DELIVERY DELAY_MS [CONNECTION_FILE]
(DELIVERY: killpg or kill; or message, an interrupt_request on the control
channel of the kernel whose CONNECTION_FILE is given, as a frontend of a
message-mode kernel sends it: that needs jupyter_client, which a kernel's
interpreter has). Otherwise standard library only. It listens on SOCKET (the
probe's report channel, SIGPROBE_REPORT=unix:SOCKET); for every connection it
waits for the probe's `ready` (or `sigprobe check`'s `start`), sleeps DELAY_MS, interrupts and prints
{"ev":"delivered","t_ns":..}, forwards every probe event as
{"ev":"probe","event":{..}} and prints {"ev":"closed"} when the probe hangs up.
Stdin is its lifeline: EOF (the kernel side is done or gone) ends it.
"""
import json
import os
import select
import signal
import socket
import sys
import time


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def same_process(pid, pgid):
    """The target still exists and still leads the group we were told about,
    so the signal cannot reach a process that reused the pid."""
    try:
        return os.getpgid(pid) == pgid
    except OSError:
        return False


def relay(line, run, delay_s, deliver):
    """One report line of the probe: forwarded as {"ev":"probe"}; on the run's
    first `ready`, delay_s later, deliver() interrupts and returns what to say
    ({"ev":"delivered",..} or {"ev":"error",..}). `run` holds the run's state,
    {"delivered": bool}. Returns the probe's event (None: not JSON). Shared
    with _sender_win.py."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    say({"ev": "probe", "event": event})
    if event.get("ev") in ("ready", "start") and not run["delivered"]:
        run["delivered"] = True
        time.sleep(delay_s)
        say(deliver())
    return event


class ControlChannel:
    """A client of the kernel's control channel, connected ahead so that the
    request leaves at once."""

    def __init__(self, connection_file):
        from jupyter_client import BlockingKernelClient
        self.kc = BlockingKernelClient(connection_file=connection_file)
        self.kc.load_connection_file()
        self.kc.start_channels(shell=False, iopub=False, stdin=False, hb=False, control=True)

    def interrupt(self):
        t = time.monotonic_ns()
        self.kc.control_channel.send(self.kc.session.msg("interrupt_request", content={}))
        return {"ev": "delivered", "t_ns": t, "delivery": "message", "sender_pid": os.getpid()}


def interrupt(pid, pgid, delivery, control=None):
    if control is not None:
        return control.interrupt()
    if not same_process(pid, pgid):
        return {"ev": "error", "reason": f"pid {pid} is gone or left group {pgid}; nothing sent"}
    t = time.monotonic_ns()
    if delivery == "killpg":
        os.killpg(pgid, signal.SIGINT)
    else:
        os.kill(pid, signal.SIGINT)
    return {"ev": "delivered", "t_ns": t, "delivery": delivery, "sender_pid": os.getpid()}


def serve(conn, pid, pgid, delivery, delay_s, control=None):
    buf, run = b"", {"delivered": False}
    while True:
        r, _, _ = select.select([conn, 0], [], [], 30)
        if not r:
            say({"ev": "error", "reason": "no event from the probe within 30 s"})
            return
        if 0 in r and not os.read(0, 4096):
            sys.exit(0)
        if conn not in r:
            continue
        chunk = conn.recv(65536)
        if not chunk:
            say({"ev": "closed"})
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            relay(line, run, delay_s, lambda: interrupt(pid, pgid, delivery, control))


def main():
    path, pid, pgid, delivery, delay_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    control = ControlChannel(sys.argv[6]) if delivery == "message" else None
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    say({"ev": "listening", "pid": os.getpid()})
    while True:
        r, _, _ = select.select([srv, 0], [], [])
        if 0 in r and not os.read(0, 4096):
            return 0
        if srv in r:
            conn, _ = srv.accept()
            with conn:
                serve(conn, pid, pgid, delivery, delay_ms / 1000, control)


if __name__ == "__main__":
    sys.exit(main())
