#!/usr/bin/env python3
"""Wait until N messages have been delivered; helper for bench/smtp-accept.sh.

Prints one line, "<epoch seconds when the count was first seen> <count>",
and exits 0 once at least N messages are in the mailbox, or prints
"timeout <count>" and exits 2 when the time limit passes first.

    smtp_accept_wait.py maildir DIR N TIMEOUT INTERVAL
        counts the files in the Maildir folder DIR (new/ and cur/).

    smtp_accept_wait.py postern BIN DATA_DIR USER N TIMEOUT INTERVAL
        asks `BIN --data-dir DATA_DIR queue list --json` until the queue is
        empty, then `mail list USER --json` for the INBOX count. If
        `queue list` fails, it falls back to polling `mail list` alone.
"""

import json
import os
import subprocess
import sys
import time


def count_maildir(folder):
    n = 0
    for sub in ("new", "cur"):
        try:
            with os.scandir(os.path.join(folder, sub)) as it:
                n += sum(1 for e in it if not e.name.startswith("."))
        except FileNotFoundError:
            pass
    return n


def json_len(argv):
    """Length of the JSON array a command prints, or None if it failed."""
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        return None, p.stderr.strip()
    try:
        value = json.loads(p.stdout)
    except ValueError as e:
        return None, f"not JSON ({e}): {p.stdout[:200]!r}"
    if not isinstance(value, list):
        return None, f"expected a JSON array, got {type(value).__name__}"
    return len(value), ""


def main(argv):
    if len(argv) == 6 and argv[1] == "maildir":
        _, _, folder, n, timeout, interval = argv

        def count():
            return count_maildir(folder)

    elif len(argv) == 8 and argv[1] == "postern":
        _, _, binary, data_dir, user, n, timeout, interval = argv
        base = [binary, "--data-dir", data_dir]
        use_queue = True

        def count():
            nonlocal use_queue
            if use_queue:
                queued, err = json_len(base + ["queue", "list", "--json"])
                if queued is None:
                    print(f"note: `queue list --json` failed ({err}); "
                          "polling `mail list` only", file=sys.stderr)
                    use_queue = False
                elif queued > 0:
                    return -1  # still delivering; skip the costlier call
            got, err = json_len(base + ["mail", "list", user, "--json"])
            if got is None:
                sys.exit(f"`mail list {user} --json` failed: {err}")
            return got

    else:
        sys.exit(__doc__)

    n, timeout, interval = int(n), float(timeout), float(interval)
    deadline = time.monotonic() + timeout
    last = 0
    while True:
        got = count()
        if got >= 0:
            last = got
        if got >= n:
            print(f"{time.time():.6f} {got}")
            return 0
        if time.monotonic() >= deadline:
            print(f"timeout {last}")
            return 2
        time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
