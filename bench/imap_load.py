#!/usr/bin/env python3
"""IMAP load over raw sockets; helper for bench/imap.sh.

The client is deliberately small and the same for both servers: one
socket, a byte buffer, lines up to CRLF, and literals `{n}` read by count.
No imaplib, so client overhead stays low and identical.

    imap_load.py append HOST:PORT USER PASSWORD COUNT BATCH TIMEOUT
        LOGIN, then COUNT messages APPENDed to INBOX over that one
        connection with LITERAL+ (`{n+}`): BATCH commands are written at
        once, then their BATCH tagged replies are read. Every reply must be
        OK. Prints: <seconds for the APPENDs> <count> <octets>

    imap_load.py ops HOST:PORT USER PASSWORD EXPECT WORD TIMEOUT
        one fresh connection: LOGIN (not timed), then, each timed from the
        write of the command to its tagged reply:
          SELECT INBOX
          UID FETCH 1:* (FLAGS)
          UID SEARCH SUBJECT WORD
          UID FETCH a:b (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (...)])
            for the last 100 UIDs
        then LOGOUT. The FLAGS fetch must list EXPECT messages and the
        header fetch 100. Prints one line:
          <select ms> <flags ms> <search ms or -> <headers ms> <search hits or ->
        ("-" when the server answers SEARCH with NO or BAD.)

    imap_load.py idle HOST:PORT USER PASSWORD COUNT WORKERS TIMEOUT PID
        memory of idling sessions. One session logs in and SELECTs INBOX,
        then the RSS of PID and all its descendants is summed (VmRSS from
        /proc); then COUNT more sessions each LOGIN, SELECT INBOX, IDLE
        (until the `+`), opened by WORKERS threads; after a 2 s settle the
        RSS is summed again. Prints:
          <rss KiB before> <rss KiB after> <procs before> <procs after>

    imap_load.py ext HOST:PORT USER PASSWORD EXPECT CHANGES FETCH_MIB TIMEOUT
        the extensions a syncing client uses (bench/imap.sh --extensions):
          resync   a session notes UIDVALIDITY and HIGHESTMODSEQ (ENABLE
                   QRESYNC, SELECT INBOX); another flips \\Flagged on
                   CHANGES random messages; then, each on a fresh
                   connection after LOGIN, timed and with the bytes the
                   server sent counted: ENABLE QRESYNC + SELECT INBOX
                   (QRESYNC (uidvalidity modseq)) (it must report at least
                   CHANGES FETCH lines), against SELECT INBOX + UID FETCH
                   1:* (FLAGS) (EXPECT lines)
          sort     UID SORT (DATE) UTF-8 ALL, UID THREAD REFERENCES UTF-8
                   ALL (EXPECT messages each)
          compress UID FETCH 1:n BODY.PEEK[] of the first FETCH_MIB MiB of
                   messages, without and with COMPRESS DEFLATE: time and
                   bytes on the wire (the client inflates as it reads)
        Prints one line: <full ms> <full bytes> <qresync ms> <qresync
        bytes> <sort ms> <thread ms> <fetch ms> <fetch bytes> <deflate ms>
        <deflate bytes> <fetch octets>

    imap_load.py rss PID
        the RSS of PID and all its descendants, summed as for idle. Prints:
          <rss KiB> <procs>

    imap_load.py words
        prints the subject words, one a line (the shell picks the search
        word from them).

Messages are made from a fixed seed, so both servers get the very same
COUNT messages: 1-2 KiB, CRLF line ends, Subject "msg <n> <word>" with one
of 100 six-letter words (distinct, same length, so none is part of another
and each matches about 1% of the messages in a SUBJECT search).
"""

import os
import random
import re
import socket
import sys
import threading
import time
import zlib

SEED = 20261122
LITERAL = re.compile(rb"\{(\d+)\+?\}$")
HEADER_FIELDS = ("From To Cc Bcc Subject Date Message-ID Priority X-Priority "
                 "References Newsgroups In-Reply-To Content-Type Reply-To "
                 "Received")


def subject_words():
    rng = random.Random(SEED)
    cons, vows = "bdfgklmnprstvz", "aeiou"
    words = []
    while len(words) < 100:
        w = "".join(rng.choice(cons) + rng.choice(vows) for _ in range(3))
        if w not in words:
            words.append(w)
    return words


FILLER = (
    "quarterly figures attached please review before thursday meeting the "
    "numbers for the northern region look better than last month but "
    "shipping costs are still above plan and we should talk about freight "
    "contracts renewal schedule warehouse staffing overtime budget"
).split()


def messages(count):
    """Yields `count` messages (bytes, CRLF), the same on every call."""
    rng = random.Random(SEED + 1)
    words = subject_words()
    for n in range(1, count + 1):
        day = 1 + n % 28
        headers = [
            "Received: from client.bench.example (localhost [127.0.0.1])\r\n"
            f"\tby bench.example with ESMTP id B{n:08X}; "
            f"Mon, {day:02d} Jun 2026 10:{n % 60:02d}:00 +0000",
            "From: Bench Sender <sender@bench.example>",
            "To: Bench User <bench@localhost>",
            f"Subject: msg {n} {rng.choice(words)}",
            f"Date: Mon, {day:02d} Jun 2026 10:{n % 60:02d}:00 +0000",
            f"Message-ID: <{n}.{SEED}@bench.example>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=us-ascii",
        ]
        size = rng.randint(1024, 2048)
        head = "\r\n".join(headers) + "\r\n\r\n"
        lines, left = [], max(size - len(head), 2)
        while left > 2:
            line = " ".join(rng.choices(FILLER, k=12))[: min(left - 2, 76)]
            lines.append(line)
            left -= len(line) + 2
        yield (head + "".join(l + "\r\n" for l in lines)).encode("ascii")


class Conn:
    """One IMAP connection: buffered reads of lines and counted literals."""

    def __init__(self, hostport, timeout):
        host, _, port = hostport.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = bytearray()
        self.pos = 0
        self.tag_n = 0
        # Bytes read from the socket (compressed ones when deflating).
        self.received = 0
        self.inflate = None
        self.deflate = None
        greeting = self.line()
        if not greeting.startswith(b"* OK"):
            raise RuntimeError(f"greeting: {greeting[:200]!r}")

    def _fill(self):
        if self.pos > 1 << 20:
            del self.buf[: self.pos]
            self.pos = 0
        data = self.sock.recv(1 << 18)
        if not data:
            raise ConnectionError("server closed the connection")
        self.received += len(data)
        if self.inflate is not None:
            data = self.inflate.decompress(data)
        self.buf += data

    def line(self):
        """One line without CRLF; a literal's bytes are appended after it."""
        out = bytearray()
        while True:
            while True:
                end = self.buf.find(b"\r\n", self.pos)
                if end >= 0:
                    break
                self._fill()
            part = self.buf[self.pos:end]
            self.pos = end + 2
            # Most lines carry no literal: skip the regex and the copy, so
            # that the client's parsing does not hide the server's speed
            # (a 50,000-line FETCH reply).
            if not part.endswith(b"}"):
                if not out:
                    return bytes(part)
                out += part
                return bytes(out)
            out += part
            m = LITERAL.search(part)
            if not m:
                return bytes(out)
            n = int(m.group(1))
            while len(self.buf) - self.pos < n:
                self._fill()
            out += self.buf[self.pos:self.pos + n]
            self.pos += n

    def tag(self):
        self.tag_n += 1
        return f"a{self.tag_n}"

    def send(self, data):
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def start_deflate(self):
        """After `COMPRESS DEFLATE` was answered OK (RFC 4978: raw DEFLATE
        both ways from the next byte on)."""
        if self.pos != len(self.buf):
            raise RuntimeError("data after the COMPRESS reply")
        self.inflate = zlib.decompressobj(-15)
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)

    def until_tagged(self, tag):
        """Reads responses up to `tag`'s; returns (untagged lines, tagged)."""
        t = tag.encode() + b" "
        lines = []
        while True:
            ln = self.line()
            if ln.startswith(t):
                return lines, ln
            lines.append(ln)

    def command(self, text):
        tag = self.tag()
        self.send(f"{tag} {text}\r\n".encode())
        return self.until_tagged(tag)

    def ok(self, text):
        lines, done = self.command(text)
        if done.split(b" ", 2)[1:2] != [b"OK"]:
            raise RuntimeError(f"{text.split()[0]}: {done[:200]!r}")
        return lines

    def login(self, user, password):
        self.ok(f'LOGIN "{user}" "{password}"')

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def append(hostport, user, password, count, batch, timeout):
    c = Conn(hostport, timeout)
    c.login(user, password)
    msgs = list(messages(count))  # made before the clock starts
    octets = 0
    gen = iter(msgs)
    t0 = time.monotonic()
    deadline = t0 + timeout
    sent = 0
    while sent < count:
        n = min(batch, count - sent)
        out, tags = bytearray(), []
        for _ in range(n):
            msg = next(gen)
            octets += len(msg)
            tag = c.tag()
            tags.append(tag.encode() + b" ")
            out += f"{tag} APPEND INBOX {{{len(msg)}+}}\r\n".encode()
            out += msg + b"\r\n"
        c.send(out)
        got = 0
        while got < n:
            ln = c.line()
            if ln.startswith(b"* ") or ln.startswith(b"+ "):
                continue
            if not any(ln.startswith(t) for t in tags):
                raise RuntimeError(f"APPEND: unexpected reply {ln[:200]!r}")
            if ln.split(b" ", 2)[1:2] != [b"OK"]:
                raise RuntimeError(f"APPEND {sent + got + 1}: {ln[:200]!r}")
            got += 1
        sent += n
        if time.monotonic() > deadline:
            raise TimeoutError(f"APPEND: {sent} of {count} after {timeout}s")
    wall = time.monotonic() - t0
    c.ok("LOGOUT")
    c.close()
    print(f"{wall:.3f} {count} {octets}")


def timed(c, text):
    tag = c.tag()
    data = f"{tag} {text}\r\n".encode()
    t0 = time.perf_counter()
    c.send(data)
    lines, done = c.until_tagged(tag)
    ms = (time.perf_counter() - t0) * 1000
    status = done.split(b" ", 2)[1:2]
    return ms, lines, status == [b"OK"], done


def ops(hostport, user, password, expect, word, timeout):
    c = Conn(hostport, timeout)
    c.login(user, password)

    sel_ms, _, ok, done = timed(c, "SELECT INBOX")
    if not ok:
        raise RuntimeError(f"SELECT: {done[:200]!r}")

    flags_ms, lines, ok, done = timed(c, "UID FETCH 1:* (FLAGS)")
    if not ok:
        raise RuntimeError(f"UID FETCH FLAGS: {done[:200]!r}")
    uid_re = re.compile(rb"UID (\d+)")
    uids = []
    for ln in lines:
        if ln.startswith(b"* ") and b" FETCH " in ln:
            m = uid_re.search(ln)
            if m:
                uids.append(int(m.group(1)))
    if len(uids) != expect:
        raise RuntimeError(f"UID FETCH FLAGS listed {len(uids)} messages, expected {expect}")

    search_ms, lines, ok, done = timed(c, f"UID SEARCH SUBJECT {word}")
    if ok:
        hits = sum(len(ln.split()) - 2 for ln in lines if ln.startswith(b"* SEARCH"))
        search = f"{search_ms:.3f}"
    else:
        hits, search = "-", "-"
        print(f"imap_load: SEARCH refused: {done[:200].decode(errors='replace')}",
              file=sys.stderr)

    uids.sort()
    last = uids[-100:]
    hdr_ms, lines, ok, done = timed(
        c, f"UID FETCH {last[0]}:{last[-1]} (UID RFC822.SIZE FLAGS "
           f"BODY.PEEK[HEADER.FIELDS ({HEADER_FIELDS})])")
    if not ok:
        raise RuntimeError(f"UID FETCH headers: {done[:200]!r}")
    got = sum(1 for ln in lines if ln.startswith(b"* ") and b" FETCH " in ln)
    if got != len(last):
        raise RuntimeError(f"header fetch returned {got} messages, expected {len(last)}")
    c.ok("LOGOUT")
    c.close()
    print(f"{sel_ms:.3f} {flags_ms:.3f} {search} {hdr_ms:.3f} {hits}")


def fetch_lines(lines):
    return sum(1 for ln in lines if ln.startswith(b"* ") and b" FETCH " in ln)


def ext(hostport, user, password, expect, changes, fetch_mib, timeout):
    status_re = {
        "uidvalidity": re.compile(rb"UIDVALIDITY (\d+)"),
        "modseq": re.compile(rb"HIGHESTMODSEQ (\d+)"),
    }

    def session():
        c = Conn(hostport, timeout)
        c.login(user, password)
        return c

    # The client's state: UIDVALIDITY and HIGHESTMODSEQ.
    c = session()
    c.ok("ENABLE QRESYNC")
    lines = c.ok("SELECT INBOX")
    found = {}
    for k, r in status_re.items():
        for ln in lines:
            m = r.search(ln)
            if m:
                found[k] = int(m.group(1))
    if len(found) != 2:
        raise RuntimeError(f"SELECT gave no UIDVALIDITY or HIGHESTMODSEQ: {lines[:5]!r}")
    c.ok("LOGOUT")
    c.close()

    # Another client flips \Flagged on CHANGES messages.
    c = session()
    c.ok("SELECT INBOX")
    picked = random.Random().sample(range(1, expect + 1), changes)
    lines = c.ok(f"UID FETCH {','.join(map(str, picked))} (FLAGS)")
    flagged = {int(m.group(1)) for ln in lines if b"\\Flagged" in ln
               for m in [re.search(rb"UID (\d+)", ln)] if m}
    for uid in picked:
        sign = "-" if uid in flagged else "+"
        c.ok(f"UID STORE {uid} {sign}FLAGS.SILENT (\\Flagged)")
    c.ok("LOGOUT")
    c.close()

    # Resync with QRESYNC.
    c = session()
    c.received = 0
    t0 = time.perf_counter()
    c.ok("ENABLE QRESYNC")
    lines = c.ok(f"SELECT INBOX (QRESYNC ({found['uidvalidity']} {found['modseq']}))")
    q_ms = (time.perf_counter() - t0) * 1000
    q_bytes = c.received
    if fetch_lines(lines) < changes:
        raise RuntimeError(f"QRESYNC reported {fetch_lines(lines)} changes, expected {changes}")
    c.ok("LOGOUT")
    c.close()

    # Resync the plain way, then SORT and THREAD on that session.
    c = session()
    c.received = 0
    t0 = time.perf_counter()
    c.ok("SELECT INBOX")
    lines = c.ok("UID FETCH 1:* (FLAGS)")
    f_ms = (time.perf_counter() - t0) * 1000
    f_bytes = c.received
    if fetch_lines(lines) != expect:
        raise RuntimeError(f"UID FETCH FLAGS listed {fetch_lines(lines)}, expected {expect}")
    sort_ms, lines, ok, done = timed(c, "UID SORT (DATE) UTF-8 ALL")
    if not ok or sum(len(ln.split()) - 2 for ln in lines if ln.startswith(b"* SORT")) != expect:
        raise RuntimeError(f"SORT: {done[:200]!r}")
    thread_ms, lines, ok, done = timed(c, "UID THREAD REFERENCES UTF-8 ALL")
    if not ok or not any(ln.startswith(b"* THREAD") for ln in lines):
        raise RuntimeError(f"THREAD: {done[:200]!r}")
    c.ok("LOGOUT")
    c.close()

    # A large FETCH, without and with COMPRESS.
    total, last = 0, 0
    for n, msg in enumerate(messages(expect), 1):
        total += len(msg)
        last = n
        if total >= fetch_mib << 20:
            break
    out = []
    for deflate in (False, True):
        c = session()
        c.ok("SELECT INBOX")
        if deflate:
            c.ok("COMPRESS DEFLATE")
            c.start_deflate()
        c.received = 0
        ms, lines, ok, done = timed(c, f"UID FETCH 1:{last} BODY.PEEK[]")
        if not ok or fetch_lines(lines) != last:
            raise RuntimeError(f"FETCH BODY[]: {done[:200]!r}")
        out += [ms, c.received]
        c.ok("LOGOUT")
        c.close()
    print(f"{f_ms:.3f} {f_bytes} {q_ms:.3f} {q_bytes} {sort_ms:.3f} {thread_ms:.3f} "
          f"{out[0]:.3f} {out[1]} {out[2]:.3f} {out[3]} {total}")


def rss_tree(root):
    """Sum of VmRSS (KiB) over `root` and its descendants, their count, and
    the sum of their Pss (shared pages split among the processes sharing
    them; from smaps_rollup)."""
    parent, rss = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/status") as f:
                ppid, kib = None, 0
                for ln in f:
                    if ln.startswith("PPid:"):
                        ppid = int(ln.split()[1])
                    elif ln.startswith("VmRSS:"):
                        kib = int(ln.split()[1])
        except OSError:
            continue
        parent[int(d)], rss[int(d)] = ppid, kib
    keep = {root}
    changed = True
    while changed:
        changed = False
        for pid, pp in parent.items():
            if pp in keep and pid not in keep:
                keep.add(pid)
                changed = True
    keep &= set(rss)
    pss = 0
    for p in keep:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for ln in f:
                    if ln.startswith("Pss:"):
                        pss += int(ln.split()[1])
                        break
        except OSError:
            pass
    return sum(rss[p] for p in keep), len(keep), pss


# Sessions opened (and kept open) before the memory baseline is taken.
WARMUP_SESSIONS = 200


def idle(hostport, user, password, count, workers, timeout, pid):
    """Memory of `count` sessions in IDLE. A warm-up round of sessions
    (logged in, selected, idling, kept open) comes first, so "before" is
    the server after a burst of logins (allocator arenas, caches) and the
    difference is what each further session holds."""
    deadline = time.monotonic() + timeout
    first = Conn(hostport, timeout)
    first.login(user, password)
    first.ok("SELECT INBOX")

    def open_idle(n):
        conns, errors, lock = [], [], threading.Lock()
        todo = list(range(n))

        def worker():
            while True:
                with lock:
                    if not todo or errors:
                        return
                    todo.pop()
                try:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"not all sessions idle within {timeout}s")
                    c = Conn(hostport, max(deadline - time.monotonic(), 1))
                    with lock:
                        conns.append(c)
                    c.login(user, password)
                    c.ok("SELECT INBOX")
                    c.send(f"{c.tag()} IDLE\r\n".encode())
                    while True:
                        ln = c.line()
                        if ln.startswith(b"+"):
                            break
                        if not ln.startswith(b"* "):
                            raise RuntimeError(f"IDLE: {ln[:200]!r}")
                except Exception as e:
                    with lock:
                        errors.append(f"{type(e).__name__}: {e}")
                    return

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(deadline - time.monotonic(), 0) + 5)
        if errors or any(t.is_alive() for t in threads):
            sys.exit(f"idle: {len(conns)} sessions opened; " +
                     ("; ".join(errors[:3]) or "timed out"))
        return conns

    def close_all(conns):
        for c in conns:
            try:
                c.send(b"DONE\r\n")
            except OSError:
                pass
            c.close()

    # Kept open: closed, their freed memory would host the next sessions
    # and hide what a session holds.
    warm = open_idle(min(count, WARMUP_SESSIONS))
    time.sleep(2)
    before, procs_before, pss_before = rss_tree(pid)
    conns = open_idle(count)
    time.sleep(2)
    after, procs_after, pss_after = rss_tree(pid)
    close_all(conns + warm)
    first.close()
    print(f"{before} {after} {procs_before} {procs_after} {pss_before} {pss_after}")


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "append" and len(argv) == 8:
        append(argv[2], argv[3], argv[4], int(argv[5]), int(argv[6]), float(argv[7]))
    elif cmd == "ops" and len(argv) == 8:
        ops(argv[2], argv[3], argv[4], int(argv[5]), argv[6], float(argv[7]))
    elif cmd == "idle" and len(argv) == 9:
        idle(argv[2], argv[3], argv[4], int(argv[5]), int(argv[6]),
             float(argv[7]), int(argv[8]))
    elif cmd == "ext" and len(argv) == 9:
        ext(argv[2], argv[3], argv[4], int(argv[5]), int(argv[6]), int(argv[7]),
            float(argv[8]))
    elif cmd == "rss" and len(argv) == 3:
        kib, procs, _ = rss_tree(int(argv[2]))
        print(f"{kib} {procs}")
    elif cmd == "words" and len(argv) == 2:
        print("\n".join(subject_words()))
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
