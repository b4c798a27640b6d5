#!/usr/bin/env python3
"""Memory of `postern up` while one slow client FETCHes a large mailbox.

    bench/imap_fetch_memory.py BINARY [BINARY ...] [--messages 60]
        [--size 5000000] [--rate 20] [--port 28043]

For each binary (e.g. a release build of main and one of a branch: build
with `cargo build --release -p postern`), starts a fresh `postern up` with
only an IMAP listener (127.0.0.1:PORT, a temporary data dir), adds one
user, APPENDs --messages messages of --size octets to its INBOX over IMAP
(LITERAL+, all sent at once), then a client LOGINs, SELECTs INBOX, sends
`UID FETCH 1:* BODY.PEEK[]` and reads the answer at --rate MB/s. The
server's VmRSS is sampled every 100 ms; printed: RSS just before the FETCH,
the peak while it is answered, and 2 s after the tagged reply (the client
still connected and idle). Checks the byte count of the answer. Run by
hand; never in CI.
"""
import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

CONFIG = """log = "warn"
[smtp]
listen = []
submission_listen = []
submissions_listen = []
[pop3]
listen = []
pop3s_listen = []
[imap]
listen = ["127.0.0.1:{port}"]
imaps_listen = []
[http]
listen = []
"""
USER = "bench@localhost"
PASSWORD = "bench-password"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def message(n, size):
    head = (
        f"From: Bench <bench@example.com>\r\nTo: {USER}\r\n"
        f"Subject: message {n}\r\nMessage-ID: <{n}@bench.example>\r\n\r\n"
    ).encode()
    line = f"message {n} " + "x" * 64 + "\r\n"
    body = line.encode() * ((size - len(head)) // len(line) + 1)
    return (head + body)[:size - 2] + b"\r\n"


def read_line(sock, buf):
    while b"\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise SystemExit("connection closed")
        buf.extend(data)
    i = buf.index(b"\r\n") + 2
    line = bytes(buf[:i])
    del buf[:i]
    return line


def command(sock, buf, tag, text):
    sock.sendall(f"{tag} {text}\r\n".encode())
    while True:
        line = read_line(sock, buf)
        if line.startswith(tag.encode() + b" "):
            assert b" OK " in line, line
            return


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=300)
    buf = bytearray()
    assert read_line(sock, buf).startswith(b"* OK")
    command(sock, buf, "l", f'LOGIN {USER} "{PASSWORD}"')
    return sock, buf


def fill(port, count, size):
    sock, buf = connect(port)
    done = []

    def replies():
        seen = 0
        while seen < count:
            if read_line(sock, buf).startswith(b"a"):
                seen += 1
        done.append(seen)

    reader = threading.Thread(target=replies)
    reader.start()
    for n in range(1, count + 1):
        msg = message(n, size)
        sock.sendall(f"a{n} APPEND INBOX {{{len(msg)}+}}\r\n".encode() + msg + b"\r\n")
    reader.join()
    sock.close()


def slow_fetch(port, rate, pid, count, size):
    sock, buf = connect(port)
    command(sock, buf, "s", "SELECT INBOX")
    time.sleep(1)
    before = rss_kib(pid)
    samples = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(rss_kib(pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.time()
    sock.sendall(b"f UID FETCH 1:* BODY.PEEK[]\r\n")
    received = len(buf)
    chunk = 64 * 1024
    tail = bytes(buf)
    while not (tail.endswith(b"\r\n") and b"\r\nf OK" in tail[-200:]):
        data = sock.recv(chunk)
        if not data:
            raise SystemExit("connection closed during FETCH")
        received += len(data)
        tail = (tail + data)[-400:]
        # Pace the reading at `rate` MB/s.
        ahead = received / (rate * 1e6) - (time.time() - start)
        if ahead > 0:
            time.sleep(ahead)
    elapsed = time.time() - start
    time.sleep(2)
    stop.set()
    sampler.join()
    after = rss_kib(pid)
    expect = count * size
    assert received > expect, (received, expect)
    sock.close()
    return before, max(samples), after, received, elapsed


def measure(binary, args):
    work = tempfile.mkdtemp(prefix="fetchmem-")
    try:
        config = os.path.join(work, "postern.toml")
        with open(config, "w") as f:
            f.write(CONFIG.format(port=args.port))
        base = [binary, "--config", config, "--data-dir", os.path.join(work, "data")]
        subprocess.run(
            base + ["user", "add", USER, "--password-stdin"],
            input=PASSWORD.encode() + b"\n",
            check=True,
            stdout=subprocess.DEVNULL,
        )
        log = open(os.path.join(work, "up.log"), "wb")
        proc = subprocess.Popen(base + ["up"], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", args.port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline or proc.poll() is not None:
                        raise SystemExit(f"{binary} did not start")
                    time.sleep(0.2)
            fill(args.port, args.messages, args.size)
            return slow_fetch(args.port, args.rate, proc.pid, args.messages, args.size)
        finally:
            proc.kill()
            proc.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--messages", type=int, default=60)
    ap.add_argument("--size", type=int, default=5_000_000)
    ap.add_argument("--rate", type=float, default=20.0, help="MB/s the client reads")
    ap.add_argument("--port", type=int, default=28043)
    args = ap.parse_args()
    print(f"{'binary':<44} {'before':>8} {'peak':>8} {'after':>8} {'growth':>8} {'MB read':>8} {'s':>6}")
    for binary in args.binaries:
        before, peak, after, received, elapsed = measure(binary, args)
        mib = lambda k: f"{k / 1024:.0f}"
        print(
            f"{binary:<44} {mib(before):>8} {mib(peak):>8} {mib(after):>8} "
            f"{mib(peak - before):>8} {received / 1e6:>8.0f} {elapsed:>6.1f}"
        )
    print(
        f"(RSS in MiB; {args.messages} messages of {args.size} octets, "
        f"UID FETCH 1:* BODY.PEEK[] read at {args.rate} MB/s)"
    )


if __name__ == "__main__":
    main()
