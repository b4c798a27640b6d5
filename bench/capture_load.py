#!/usr/bin/env python3
"""Mail-fixture load: fill, query and wait; helper for bench/capture.sh.

Standard library only: smtplib for SMTP, http.client with keep-alive for
HTTP, one connection per client thread. The same requests go to both
servers; API names the dialect:

    postern   Postern's Mailpit-compatible /api/v1 (and its wait)
    maildev   MailDev's REST API (/api/email/summary: paged summaries,
              newest first, with a free-text `search`)

Subcommands (HTTP and SMTP are 127.0.0.1 ports):

    capture_load.py listed API HTTP N TIMEOUT
        polls the list endpoint back to back until it reports at least N
        messages; prints "<epoch seconds of that answer> <count>", or
        "timeout <count>" and exits 2.

    capture_load.py fill SMTP COUNT SESSIONS SIZE
        sends COUNT varied messages (see below) over SESSIONS parallel
        SMTP sessions, each kept open; prints "<seconds> <count>".

    capture_load.py latency API HTTP CLIENTS REQUESTS BUDGET
        for each query (list, search-to, search-body) and each number of
        clients in CLIENTS (comma list, e.g. 1,4): every client thread
        sends REQUESTS requests on its own keep-alive connection (after 3
        untimed), or fewer when BUDGET seconds have passed (at least 10
        each). One line per pair:
          lat <query> <clients> <p50 ms> <p95 ms> <samples> <matches>
        <matches> is the total the server reports for that query.

    capture_load.py wait API HTTP SMTP SAMPLES
        time from the end of DATA to the API's answer, SAMPLES times, one
        at a time, each message to a new address. postern: GET
        /api/v1/cursor, then GET /api/v1/wait?after=CURSOR&query=to:ADDR
        is sent and parked (20 ms) before the message goes out. maildev
        has no wait: a thread polls /api/email/summary?search=ADDR back to
        back (no sleep), from 20 ms before the message goes out, until it
        is listed. One line:
          wait <p50 ms> <p95 ms> <samples> <p50 dot ms> <p95 dot ms>
        the first pair from the client's 250 to the answer, the second
        from the client's final dot (the 250 included).

    capture_load.py words
        prints the search terms: "<to address> <body word>".

Fill messages: message i goes to box<i % 100>@fill.test (To: and RCPT
alike), Subject "Order <i> <word>", a plain UTF-8 text body of common
words filling SIZE bytes; one in 100 (i % 100 == 37) has the word
"zebrafish" in its body, which no other word contains. So in 5,000 fill
messages `to:box7@fill.test` and "zebrafish" each match 50.
"""

import http.client
import json
import random
import smtplib
import sys
import threading
import time
import urllib.parse

SEED = 20261202
TO_TERM = "box7@fill.test"
BODY_TERM = "zebrafish"
WORDS = (
    "order invoice account market report weekly status update project "
    "meeting summary customer ticket review release build server client "
    "green blue amber orange silver window garden river forest valley "
    "coffee bread apple lemon cherry table chair lamp paper pencil "
    "monday tuesday friday morning evening number simple common quick "
    "please thanks regards welcome confirm payment shipping delivery "
    "package tracking return refund support question answer reply note"
).split()


def fail(msg):
    sys.exit(f"capture_load: {msg}")


# --- HTTP ----------------------------------------------------------------------


class Api:
    """One keep-alive connection speaking one server's dialect."""

    def __init__(self, kind, port):
        if kind not in ("postern", "maildev"):
            fail(f"unknown API {kind!r}")
        self.kind, self.port = kind, int(port)
        self.conn = None

    def get(self, path, timeout=60):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                body = resp.read()
                return resp.status, body
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, path):
        status, body = self.get(path)
        if status != 200:
            fail(f"GET {path}: HTTP {status}: {body[:200]!r}")
        return json.loads(body)

    def path(self, query, term=None, limit=50):
        """The request path of a list (term None) or a search."""
        if self.kind == "postern":
            if term is None:
                return f"/api/v1/messages?limit={limit}"
            return f"/api/v1/search?limit={limit}&query={urllib.parse.quote(term)}"
        p = f"/api/email/summary?limit={limit}"
        if term is not None:
            p += f"&search={urllib.parse.quote(term)}"
        return p

    def total(self, answer, searched):
        """What the server says matched (a search) or is stored (a list)."""
        if self.kind == "postern":
            return answer["messages_count"] if searched else answer["total"]
        return answer["total"]

    def count(self):
        return self.total(self.json(self.path("list", None, 1)), False)


QUERIES = {
    # name: (term for postern, term for maildev); None = the list.
    "list": (None, None),
    # MailDev's paged API has one free-text search (subject, from, to, cc,
    # text body); the address appears only in To:, so it is the same set.
    "search-to": (f"to:{TO_TERM}", TO_TERM),
    "search-body": (BODY_TERM, BODY_TERM),
}


# --- messages ------------------------------------------------------------------


def fill_message(i, size, nonce):
    rnd = random.Random(SEED * 100_003 + i)
    box = i % 100
    head = (
        f"From: Shop <shop@fill.test>\r\n"
        f"To: Box {box} <box{box}@fill.test>\r\n"
        f"Subject: Order {i} {rnd.choice(WORDS)}\r\n"
        f"Date: Wed, 02 Dec 2026 12:00:00 +0000\r\n"
        f"Message-ID: <fill.{i}.{nonce}@fill.test>\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    words = []
    length = 0
    special = i % 100 == 37
    at = rnd.randrange(1, 200) if special else -1
    lines, line = [], []
    while length < size - len(head):
        w = BODY_TERM if len(words) == at else rnd.choice(WORDS)
        words.append(w)
        line.append(w)
        length += len(w) + 1
        if len(line) == 12:
            lines.append(" ".join(line))
            length += 1
            line = []
    if line:
        lines.append(" ".join(line))
    return head + "\r\n".join(lines) + "\r\n"


def fill(smtp_port, count, sessions, size):
    nonce = f"{int(time.time() * 1000) % 10**9}"
    next_i = [0]
    lock = threading.Lock()
    errors = []

    def worker():
        try:
            s = smtplib.SMTP("127.0.0.1", int(smtp_port), timeout=120)
            s.ehlo("fill.test")
            while True:
                with lock:
                    i = next_i[0]
                    if i >= count:
                        break
                    next_i[0] += 1
                box = i % 100
                msg = fill_message(i, size, nonce)
                s.sendmail("shop@fill.test", [f"box{box}@fill.test"], msg.encode())
            s.quit()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        fail(f"fill: {errors[0]}")
    print(f"{time.perf_counter() - start:.3f} {count}")


# --- measurements --------------------------------------------------------------


def percentile(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def listed(kind, port, want, timeout):
    api = Api(kind, port)
    deadline = time.monotonic() + float(timeout)
    got = 0
    while True:
        got = api.count()
        if got >= int(want):
            print(f"{time.time():.6f} {got}")
            return 0
        if time.monotonic() > deadline:
            print(f"timeout {got}")
            return 2
        time.sleep(0.002)


def latency(kind, port, clients_list, requests, budget):
    clients_list = [int(c) for c in clients_list.split(",") if c]
    for name, terms in QUERIES.items():
        term = terms[0] if kind == "postern" else terms[1]
        probe = Api(kind, port)
        path = probe.path(name, term)
        matches = probe.total(probe.json(path), term is not None)
        for clients in clients_list:
            samples = []
            lock = threading.Lock()
            deadline = time.monotonic() + float(budget)
            errors = []

            def client():
                api = Api(kind, port)
                mine = []
                try:
                    for _ in range(3):
                        api.get(path)
                    for n in range(int(requests)):
                        if n >= 10 and time.monotonic() > deadline:
                            break
                        t0 = time.perf_counter()
                        status, _ = api.get(path)
                        mine.append((time.perf_counter() - t0) * 1000)
                        if status != 200:
                            errors.append(f"HTTP {status} for {path}")
                            return
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
                with lock:
                    samples.extend(mine)

            threads = [threading.Thread(target=client) for _ in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                fail(f"latency {name}: {errors[0]}")
            print(f"lat {name} {clients} {percentile(samples, 50):.2f} "
                  f"{percentile(samples, 95):.2f} {len(samples)} {matches}", flush=True)


def wait(kind, http_port, smtp_port, samples):
    nonce = f"{int(time.time() * 1000) % 10**9}"
    smtp = smtplib.SMTP("127.0.0.1", int(smtp_port), timeout=60)
    smtp.ehlo("wait.test")
    api = Api(kind, http_port)
    after_250, after_dot = [], []
    for k in range(int(samples)):
        addr = f"wait{k}.{nonce}@wait.test"
        msg = (
            f"From: <app@wait.test>\r\nTo: <{addr}>\r\nSubject: wait {k}\r\n"
            f"Message-ID: <wait.{k}.{nonce}@wait.test>\r\n\r\nhello {k}\r\n"
        ).encode()
        answered = [None]
        errors = []
        if kind == "postern":
            cursor = api.json("/api/v1/cursor")["cursor"]
            path = (f"/api/v1/wait?timeout=30&after={cursor}"
                    f"&query={urllib.parse.quote('to:' + addr)}")

            def waiter():
                try:
                    status, body = api.get(path, timeout=60)
                    answered[0] = time.perf_counter()
                    if status != 200:
                        errors.append(f"wait: HTTP {status}: {body[:200]!r}")
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
        else:
            path = api.path("search", addr, 1)

            def waiter():
                try:
                    end = time.monotonic() + 30
                    while time.monotonic() < end:
                        status, body = api.get(path)
                        if status == 200 and json.loads(body)["total"] >= 1:
                            answered[0] = time.perf_counter()
                            return
                    errors.append("maildev did not list the message within 30 s")
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))

        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.02)
        code, _ = smtp.mail("app@wait.test")
        if code != 250:
            fail(f"wait: MAIL FROM answered {code}")
        code, _ = smtp.rcpt(addr)
        if code not in (250, 251):
            fail(f"wait: RCPT TO answered {code}")
        t_dot = time.perf_counter()
        code, _ = smtp.data(msg)
        t_250 = time.perf_counter()
        if code != 250:
            fail(f"wait: DATA answered {code}")
        t.join()
        if errors or answered[0] is None:
            fail(f"wait: {errors[0] if errors else 'no answer'}")
        after_250.append((answered[0] - t_250) * 1000)
        after_dot.append((answered[0] - t_dot) * 1000)
        time.sleep(0.01)
    smtp.quit()
    print(f"wait {percentile(after_250, 50):.2f} {percentile(after_250, 95):.2f} "
          f"{len(after_250)} {percentile(after_dot, 50):.2f} {percentile(after_dot, 95):.2f}")


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "listed" and len(argv) == 6:
        return listed(*argv[2:])
    if cmd == "fill" and len(argv) == 6:
        fill(argv[2], int(argv[3]), int(argv[4]), int(argv[5]))
        return 0
    if cmd == "latency" and len(argv) == 7:
        latency(*argv[2:])
        return 0
    if cmd == "wait" and len(argv) == 6:
        wait(*argv[2:])
        return 0
    if cmd == "words" and len(argv) == 2:
        print(TO_TERM, BODY_TERM)
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
