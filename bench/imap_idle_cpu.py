#!/usr/bin/env python3
"""Helper for bench/imap_idle_cpu.sh: IMAP sessions held in IDLE, and a
wait for a mailbox to reach a message count.

  imap_idle_cpu.py idle HOST:PORT PASSWORD COUNT WORKERS TIMEOUT USER...
      Opens COUNT sessions, spread round-robin over the USERs, each
      LOGIN, SELECT INBOX, IDLE (up to the "+"). Prints "ready N" when all
      are idling, then holds them until stdin closes; then prints
      "untagged K" (lines the idle sessions were sent meanwhile) and exits
      without LOGOUT.
  imap_idle_cpu.py wait HOST:PORT USER PASSWORD COUNT TIMEOUT
      Polls STATUS INBOX (MESSAGES) until it is at least COUNT; prints
      the seconds it took.
"""

import socket
import sys
import threading
import time


class Conn:
    def __init__(self, hostport, timeout):
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""
        self.n = 0
        self.line()  # greeting

    def line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.buf += data
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln.rstrip(b"\r")

    def ok(self, text):
        self.n += 1
        tag = f"a{self.n}"
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        lines = []
        while True:
            ln = self.line()
            if ln.startswith(tag.encode() + b" "):
                if ln.split(b" ", 2)[1:2] != [b"OK"]:
                    raise RuntimeError(f"{text.split()[0]}: {ln[:200]!r}")
                return lines
            lines.append(ln)


def idle(hostport, password, count, workers, timeout, users):
    conns = [None] * count
    errors = []
    next_i = [0]
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                i = next_i[0]
                if i >= count or errors:
                    return
                next_i[0] += 1
            try:
                c = Conn(hostport, timeout)
                c.ok(f'LOGIN "{users[i % len(users)]}" "{password}"')
                c.ok("SELECT INBOX")
                c.sock.sendall(b"i IDLE\r\n")
                while not c.line().startswith(b"+"):
                    pass
                conns[i] = c
            except Exception as e:  # noqa: BLE001 - reported, then we stop
                with lock:
                    errors.append(f"session {i}: {e}")
                return

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print("error " + errors[0], flush=True)
        sys.exit(1)
    print(f"ready {count}", flush=True)
    sys.stdin.read()
    untagged = 0
    for c in conns:
        c.sock.setblocking(False)
        try:
            while True:
                data = c.sock.recv(65536)
                if not data:
                    break
                untagged += data.count(b"\n")
        except (BlockingIOError, OSError):
            pass
        untagged += c.buf.count(b"\n")
        c.sock.close()
    print(f"untagged {untagged}", flush=True)


def wait(hostport, user, password, count, timeout):
    t0 = time.monotonic()
    c = Conn(hostport, 30)
    c.ok(f'LOGIN "{user}" "{password}"')
    while True:
        lines = c.ok("STATUS INBOX (MESSAGES)")
        got = 0
        for ln in lines:
            if ln.startswith(b"* STATUS"):
                got = int(ln.rsplit(b"MESSAGES ", 1)[1].split(b")")[0])
        if got >= count:
            break
        if time.monotonic() - t0 > timeout:
            print(f"timeout: {got} of {count} messages", flush=True)
            sys.exit(1)
        time.sleep(0.2)
    c.sock.close()
    print(f"{time.monotonic() - t0:.3f}", flush=True)


def main(argv):
    if argv[1] == "idle":
        hostport, password, count, workers, timeout = argv[2:7]
        idle(hostport, password, int(count), int(workers), float(timeout), argv[7:])
    elif argv[1] == "wait":
        hostport, user, password, count, timeout = argv[2:7]
        wait(hostport, user, password, int(count), float(timeout))
    else:
        sys.exit(f"usage: {__doc__}")


if __name__ == "__main__":
    main(sys.argv)
