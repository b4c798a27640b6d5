#!/usr/bin/env python3
"""Helper for bench/imap_feed_cpu.sh: fills one mailbox, then measures the
server CPU each flag change costs while many sessions on that mailbox sit
in IDLE.

  imap_feed_cpu.py fill HOST:PORT USER PASSWORD COUNT THREADS TIMEOUT
      APPENDs COUNT small messages to USER's INBOX over THREADS sessions
      (LITERAL+), so that the store's group commit batches them.
  imap_feed_cpu.py run HOST:PORT USER PASSWORD SESSIONS CHANGES PID TIMEOUT
      Opens SESSIONS sessions that SELECT INBOX and IDLE, and one more
      that makes CHANGES flag changes, `UID STORE k +FLAGS.SILENT ($Bench)`
      for k = 1..CHANGES, one at a time: each waits until every idle
      session was sent its `FETCH` (lock-step: every change is one wake-up
      and one look per session). Prints "ms_per_change X" (the server's
      CPU, utime + stime of process PID, over the changes divided by
      CHANGES) and "seconds Y".
"""

import os
import select
import socket
import sys
import threading
import time

# The plain session (greeting, lines, tagged commands) is the IDLE bench's.
from imap_idle_cpu import Conn


class Session(Conn):
    """A session of imap_idle_cpu.py's that also APPENDs."""

    def append(self, mailbox, message):
        self.n += 1
        tag = f"a{self.n}".encode()
        self.sock.sendall(tag + f" APPEND {mailbox} {{{len(message)}+}}\r\n".encode() + message + b"\r\n")
        while True:
            ln = self.line()
            if ln.startswith(tag + b" "):
                if ln.split(b" ", 2)[1:2] != [b"OK"]:
                    raise RuntimeError(f"APPEND: {ln[:200]!r}")
                return


def fill(hostport, user, password, count, threads, timeout):
    errors = []
    next_i = [0]
    lock = threading.Lock()

    def worker():
        try:
            c = Session(hostport, timeout)
            c.ok(f'LOGIN "{user}" "{password}"')
            while True:
                with lock:
                    i = next_i[0]
                    if i >= count or errors:
                        return
                    next_i[0] += 1
                msg = (
                    f"From: bench@example.org\r\nTo: {user}\r\nSubject: message {i}\r\n"
                    f"Message-ID: <{i}@bench.example.org>\r\n\r\nBody of message {i}.\r\n"
                ).encode()
                c.append("INBOX", msg)
        except Exception as e:  # noqa: BLE001 - reported, then we stop
            with lock:
                errors.append(str(e))

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        print("error " + errors[0], flush=True)
        sys.exit(1)
    print(f"filled {count}", flush=True)


def cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def run(hostport, user, password, sessions, changes, pid, timeout):
    idlers = []
    for _ in range(sessions):
        c = Conn(hostport, timeout)
        c.ok(f'LOGIN "{user}" "{password}"')
        c.ok("SELECT INBOX")
        c.sock.sendall(b"i IDLE\r\n")
        while not c.line().startswith(b"+"):
            pass
        c.sock.setblocking(False)
        idlers.append(c)
    writer = Conn(hostport, timeout)
    writer.ok(f'LOGIN "{user}" "{password}"')
    writer.ok("SELECT INBOX")
    time.sleep(1)  # let the logins' after-effects settle
    by_fd = {c.sock.fileno(): c for c in idlers}
    t0, cpu0 = time.monotonic(), cpu_ms(pid)
    for k in range(1, changes + 1):
        writer.ok(f"UID STORE {k} +FLAGS.SILENT ($Bench)")
        want = f"FETCH (UID {k} ".encode()
        waiting = set(by_fd)
        deadline = time.monotonic() + timeout
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                print(f"timeout: {len(waiting)} sessions not told of change {k}", flush=True)
                sys.exit(1)
            ready, _, _ = select.select(list(waiting), [], [], left)
            for fd in ready:
                c = by_fd[fd]
                try:
                    data = c.sock.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    print("error: a session was closed", flush=True)
                    sys.exit(1)
                c.buf += data
                if want in c.buf:
                    # Nothing else is due before the next change.
                    c.buf = b""
                    waiting.discard(fd)
    cpu1, t1 = cpu_ms(pid), time.monotonic()
    print(f"ms_per_change {(cpu1 - cpu0) / changes:.3f}", flush=True)
    print(f"seconds {t1 - t0:.1f}", flush=True)
    for c in idlers:
        c.sock.close()
    writer.sock.close()


def main(argv):
    if len(argv) > 1 and argv[1] == "fill":
        hostport, user, password, count, threads, timeout = argv[2:8]
        fill(hostport, user, password, int(count), int(threads), float(timeout))
    elif len(argv) > 1 and argv[1] == "run":
        hostport, user, password, sessions, changes, pid, timeout = argv[2:9]
        run(hostport, user, password, int(sessions), int(changes), int(pid), float(timeout))
    else:
        sys.exit(f"usage: {__doc__}")


if __name__ == "__main__":
    main(sys.argv)
