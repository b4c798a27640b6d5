#!/usr/bin/env python3
"""Memory of idle SMTP, POP3 or IMAP sessions: what each more session holds
in `postern up`.

    bench/idle_memory.py BINARY [BINARY ...] [--sessions N] [--pop3 | --imap]

For each binary (e.g. a build of main and one of a branch), starts a fresh
`postern up` with only an SMTP listener (127.0.0.1:25525, a temporary data
dir), opens 50 warm-up sessions (the allocator's one-time growth), then N
more (default 1000) that each send EHLO and MAIL FROM and then wait, as a
client does while it prepares its recipients (with --pop3: POP3 sessions
on 127.0.0.1:25526 that send CAPA and USER, then wait; with --imap: IMAP
sessions on 127.0.0.1:25527 that LOGIN, SELECT INBOX and IDLE, opened
16 at a time, so the logins come as the burst of a client fleet
reconnecting, with argon2id checks running side by side); prints the RSS
before and after the N and the KiB each one holds. Run by hand; never in
CI.
"""
import argparse
import concurrent.futures
import os
import resource
import socket
import subprocess
import tempfile
import time

CONFIG = """log = "warn"
[smtp]
listen = ["127.0.0.1:25525"]
submission_listen = []
submissions_listen = []
[limits]
max_connections = 5000
max_connections_per_ip = 5000
[pop3]
listen = ["127.0.0.1:25526"]
pop3s_listen = []
[imap]
listen = ["127.0.0.1:25527"]
imaps_listen = []
max_connections_per_user = 5000
[http]
listen = []
"""


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def reply(f):
    while True:
        line = f.readline()
        if line[3:4] != b"-":
            return line


def pop3_session():
    s = socket.create_connection(("127.0.0.1", 25526), timeout=30)
    f = s.makefile("rb")
    assert f.readline().startswith(b"+OK")
    s.sendall(b"CAPA\r\n")
    while f.readline() != b".\r\n":
        pass
    s.sendall(b"USER someone@localhost\r\n")
    assert f.readline().startswith(b"+OK")
    return s, f


IMAP_USER = b"idle@localhost"
IMAP_PASSWORD = b"idle-password"


def imap_session():
    s = socket.create_connection(("127.0.0.1", 25527), timeout=60)
    f = s.makefile("rb")
    assert f.readline().startswith(b"* OK")
    for tag, command in ((b"a", b"LOGIN " + IMAP_USER + b" " + IMAP_PASSWORD), (b"b", b"SELECT INBOX")):
        s.sendall(tag + b" " + command + b"\r\n")
        while True:
            line = f.readline()
            if line.startswith(tag + b" "):
                assert line.startswith(tag + b" OK"), line
                break
    s.sendall(b"c IDLE\r\n")
    assert f.readline().startswith(b"+"), "no IDLE continuation"
    return s, f


def smtp_session():
    s = socket.create_connection(("127.0.0.1", 25525), timeout=30)
    f = s.makefile("rb")
    reply(f)
    s.sendall(b"EHLO client.test\r\n")
    reply(f)
    s.sendall(b"MAIL FROM:<sender@client.test>\r\n")
    r = reply(f)
    assert r.startswith(b"250"), r
    return s, f


def measure(binary, n, session):
    work = tempfile.mkdtemp()
    config = os.path.join(work, "postern.toml")
    with open(config, "w") as f:
        f.write(CONFIG)
    if session is imap_session:
        subprocess.run(
            [binary, "--config", config, "--data-dir", os.path.join(work, "data"),
             "user", "add", IMAP_USER.decode(), "--password-stdin"],
            input=IMAP_PASSWORD + b"\n", check=True, capture_output=True,
        )
    proc = subprocess.Popen(
        [binary, "--config", config, "--data-dir", os.path.join(work, "data"), "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 30
        for line in proc.stdout:
            if b"postern: ready" in line:
                break
            if time.time() > deadline:
                raise SystemExit(f"{binary} did not start")
        time.sleep(0.5)
        fresh = rss_kib(proc.pid)
        warm = [session() for _ in range(50)]
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        if session is imap_session:
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                idle = list(pool.map(lambda _: session(), range(n)))
        else:
            idle = [session() for _ in range(n)]
        time.sleep(1)
        after = rss_kib(proc.pid)
        del warm, idle
        return fresh, before, after
    finally:
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--sessions", type=int, default=1000)
    kind = ap.add_mutually_exclusive_group()
    kind.add_argument("--pop3", action="store_true")
    kind.add_argument("--imap", action="store_true")
    args = ap.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"{'binary':<40} {'fresh':>7} {'+50':>7} {'after':>7} {'KiB/session':>12} {'from fresh':>11}")
    for binary in args.binaries:
        session = pop3_session if args.pop3 else imap_session if args.imap else smtp_session
        fresh, before, after = measure(binary, args.sessions, session)
        each = (after - before) / args.sessions
        burst = (after - fresh) / (args.sessions + 50)
        print(f"{binary:<40} {fresh:>7} {before:>7} {after:>7} {each:>12.1f} {burst:>11.1f}")
    what = ("POP3 sessions after CAPA and USER" if args.pop3
            else "IMAP sessions in IDLE after LOGIN and SELECT" if args.imap
            else "SMTP sessions after EHLO and MAIL FROM")
    print(f"({args.sessions} {what}, idle, after 50 warm-up ones; RSS in KiB;"
          " 'from fresh': all sessions over the RSS of the fresh process)")


if __name__ == "__main__":
    main()
