"""The listening end of `sigprobe check`'s report channel: subject.py (in an
interpreter or inside a kernel) connects and writes its events as JSON
lines (subject.socket_emitter). One connection per run.

Two kinds: a Unix socket in a directory only this user can enter (POSIX);
or loopback TCP on an ephemeral port (Windows, whose Python under Wine has
no AF_UNIX), where any local process could connect: the connection's first
line must be the run's random token, else it is closed unread and the
listener waits for the next. Standard library only: run by the interpreter
checked (check_driver.py) and by sigprobe itself (the uninterrupted run
under Wine)."""
import hmac
import json
import os
import secrets
import select
import socket
import time

TOKEN_WAIT_S = 5.0  # how long a connection may take to send its token


class Channel:
    def __init__(self, path=None):
        """A Unix socket at path; with no path, loopback TCP with a token."""
        self.path = path
        if path is not None:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(path)
            self.address = path
        else:
            self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.listener.bind(("127.0.0.1", 0))
            self.token = secrets.token_hex(16)
            self.address = f"tcp:127.0.0.1:{self.listener.getsockname()[1]}:{self.token}"
        self.listener.listen(4)
        self.conn, self.buf, self.events, self.eof = None, b"", [], False
        self.refused = 0  # connections closed for a wrong or missing token

    def _accept(self):
        conn, _ = self.listener.accept()
        if self.path is not None:
            return conn
        # The token: one line, within TOKEN_WAIT_S.
        conn.settimeout(TOKEN_WAIT_S)
        line = b""
        try:
            while b"\n" not in line and len(line) < 256:
                chunk = conn.recv(256 - len(line))
                if not chunk:
                    break
                line += chunk
        except OSError:
            line = b""
        first, _, rest = line.partition(b"\n")
        if not hmac.compare_digest(first.strip(), self.token.encode()):
            conn.close()
            self.refused += 1
            return None
        conn.settimeout(None)
        self.buf = rest
        self._split()
        return conn

    def _split(self):
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            try:
                self.events.append(json.loads(line))
            except ValueError:
                pass

    def pump(self, timeout):
        """Reads what is there (waiting at most timeout s); returns the events so far."""
        if self.eof:
            time.sleep(max(0.0, timeout))
            return self.events
        r, _, _ = select.select([self.conn or self.listener], [], [], max(0.0, timeout))
        if r and self.conn is None:
            self.conn = self._accept()
        elif r:
            try:
                chunk = self.conn.recv(65536)
            except OSError:  # Windows: the kernel's end reset
                chunk = b""
            self.buf += chunk
            self._split()
            self.eof = not chunk  # the other end is gone or closed it
        return self.events

    def find(self, ev):
        return next((e for e in self.events if e.get("ev") == ev), None)

    def close(self):
        for sock in (self.conn, self.listener):
            if sock is not None:
                sock.close()
        if self.path is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
