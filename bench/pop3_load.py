#!/usr/bin/env python3
"""POP3 load and mailbox filling; helper for bench/pop3.sh.

    pop3_load.py fill-maildir DIR COUNT SIZE
        writes COUNT messages of about SIZE bytes straight into the Maildir
        DIR (new/), named the way Dovecot names the files it saves
        (",S=<bytes>,W=<bytes with CRLF>"), so no SMTP server is involved.

    pop3_load.py fill-smtp HOST:PORT COUNT SIZE SESSIONS TIMEOUT RCPT...
        sends COUNT messages of SIZE bytes to each RCPT over SESSIONS
        parallel SMTP connections (smtplib). Prints the seconds it took.

    pop3_load.py load HOST:PORT PASSWORD EXPECT TIMEOUT USER...
        one POP3 session per USER, all at once (one process each, started
        together behind a barrier): USER/PASS, STAT, UIDL, RETR 1..n, QUIT.
        Nothing is deleted, so runs repeat. Every session must see EXPECT
        messages in STAT and UIDL. Prints one line:
            <wall seconds> <messages retrieved> <octets> <client cpu seconds>
        wall = first session start (before connect) to last QUIT reply.

The message bodies are the same for both servers: fill-maildir adds the
Return-Path and Received lines a delivery agent would, fill-smtp leaves
those to the server.
"""

import multiprocessing as mp
import os
import poplib
import resource
import signal
import smtplib
import socket
import sys
import threading
import time

WORDS = (
    "quarterly figures attached please review before thursday meeting the "
    "numbers for the northern region look better than last month but "
    "shipping costs are still above plan and we should talk about freight "
    "contracts renewal schedule warehouse staffing overtime budget"
).split()


def message(seq, rcpt, size, trace):
    """One message of `size` octets with CRLF line ends (without the trace
    lines); returned with LF line ends for a Maildir file when `trace`."""
    stamp = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    headers = [
        "From: Bench Sender <sender@bench.example>",
        f"To: <{rcpt}>",
        f"Subject: Weekly report {seq}",
        f"Date: {stamp}",
        f"Message-ID: <{seq}.{os.getpid()}.{time.time_ns()}@bench.example>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "Content-Transfer-Encoding: 7bit",
    ]
    head_len = sum(len(h) + 2 for h in headers) + 2
    if trace:
        headers[:0] = [
            "Return-Path: <sender@bench.example>",
            f"Delivered-To: {rcpt}",
            "Received: from client.bench.example (localhost [127.0.0.1])",
            f"\tby bench.localdomain with ESMTP id {seq:08X}",
            f"\tfor <{rcpt}>; {stamp}",
        ]
    lines = []
    left = max(size - head_len, 2)
    i = seq
    while left > 0:
        words = []
        n = 0
        while n < 70:
            w = WORDS[i % len(WORDS)]
            i += 7
            words.append(w)
            n += len(w) + 1
        line = " ".join(words)
        line = line[: max(left - 2, 0)]
        lines.append(line)
        left -= len(line) + 2
    eol = "\n" if trace else "\r\n"
    return (eol.join(headers) + eol + eol + eol.join(lines) + eol).encode("ascii")


def fill_maildir(folder, count, size):
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    rcpt = os.path.basename(folder.rstrip("/")) + "@localhost"
    base = int(time.time()) - count
    pid = os.getpid()
    for seq in range(1, count + 1):
        data = message(seq, rcpt, size, trace=True)
        vsize = len(data) + data.count(b"\n")
        name = f"{base + seq}.M{seq}P{pid}.bench,S={len(data)},W={vsize}"
        tmp = os.path.join(folder, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(folder, "new", name))


def split_addr(hostport):
    host, _, port = hostport.rpartition(":")
    return host, int(port)


def fill_smtp(hostport, count, size, sessions, timeout, rcpts):
    host, port = split_addr(hostport)
    jobs = [(r, seq) for seq in range(1, count + 1) for r in rcpts]
    chunks = [jobs[k::sessions] for k in range(sessions)]
    errors = []
    deadline = time.monotonic() + timeout

    def worker(chunk):
        try:
            with smtplib.SMTP(host, port, local_hostname="client.bench.example",
                              timeout=60) as s:
                for rcpt, seq in chunk:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"fill did not finish in {timeout}s")
                    s.sendmail("sender@bench.example", [rcpt],
                               message(seq, rcpt, size, trace=False))
        except Exception as e:  # reported by the main thread
            errors.append(f"{type(e).__name__}: {e}")

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(c,), daemon=True)
               for c in chunks if c]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(deadline - time.monotonic(), 0) + 5)
    if errors or any(t.is_alive() for t in threads):
        sys.exit("fill-smtp failed: " + ("; ".join(errors[:3]) or "timed out"))
    print(f"{time.monotonic() - t0:.3f}")


def session(host, port, user, password, expect, timeout, barrier, out):
    try:
        barrier.wait(timeout)
        t0 = time.monotonic()
        pop = poplib.POP3(host, port, timeout=timeout)
        pop.user(user)
        pop.pass_(password)
        n, _ = pop.stat()
        if n != expect:
            raise RuntimeError(f"{user}: STAT says {n} messages, expected {expect}")
        uidl = pop.uidl()[1]
        if len(uidl) != expect:
            raise RuntimeError(f"{user}: UIDL lists {len(uidl)}, expected {expect}")
        octets = 0
        for i in range(1, n + 1):
            _, lines, size = pop.retr(i)
            if not lines:
                raise RuntimeError(f"{user}: RETR {i} returned no lines")
            octets += size
        pop.quit()
        out.put((t0, time.monotonic(), n, octets, None))
    except Exception as e:
        out.put((0, 0, 0, 0, f"{user}: {type(e).__name__}: {e}"))


def load(hostport, password, expect, timeout, users):
    host, port = split_addr(hostport)
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(len(users) + 1)
    out = ctx.Queue()
    procs = [ctx.Process(target=session, daemon=True,
                         args=(host, port, u, password, expect, timeout, barrier, out))
             for u in users]
    # On SIGTERM exit through SystemExit, so multiprocessing stops the
    # (daemon) session processes instead of leaving them behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    try:
        barrier.wait(timeout)
        results = []
        for _ in procs:
            results.append(out.get(timeout=max(deadline - time.monotonic(), 0.1)))
    except Exception as e:
        for p in procs:
            p.kill()
        sys.exit(f"load: sessions did not finish within {timeout}s ({type(e).__name__})")
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
    errors = [r[4] for r in results if r[4]]
    if errors:
        sys.exit("load failed: " + "; ".join(errors[:3]))
    wall = max(r[1] for r in results) - min(r[0] for r in results)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"{wall:.4f} {sum(r[2] for r in results)} {sum(r[3] for r in results)} "
          f"{cpu.ru_utime + cpu.ru_stime:.2f}")


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "fill-maildir" and len(argv) == 5:
        fill_maildir(argv[2], int(argv[3]), int(argv[4]))
    elif cmd == "fill-smtp" and len(argv) >= 8:
        fill_smtp(argv[2], int(argv[3]), int(argv[4]), int(argv[5]),
                  float(argv[6]), argv[7:])
    elif cmd == "load" and len(argv) >= 7:
        load(argv[2], argv[3], int(argv[4]), float(argv[5]), argv[6:])
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    socket.setdefaulttimeout(120)
    sys.exit(main(sys.argv))
