#!/usr/bin/env python3
"""Counts what smtp-sink received, for bench/relay.sh.

    relay_sink_count.py WANT EVENTS < smtp-sink -c output

`smtp-sink -c` writes its counters as "sess=S quit=Q mesg=M", one update
per session end, QUIT and final dot, each ended by a carriage return. This
reads them as they come (unbuffered) and appends to the file EVENTS:

    first <time> <sessions>            the first message is in
    all <time> <sessions> <messages>   WANT messages are in
    final <sessions> <quits> <messages>   at end of input (the sink stopped)

<time> is the wall clock (seconds since the epoch, the clock bash's
EPOCHREALTIME reads) when the update was read. Each line is written and
flushed at once, so a poller sees it as soon as it exists.
"""

import os
import re
import sys
import time

COUNTERS = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)")


def main() -> int:
    want = int(sys.argv[1])
    events = open(sys.argv[2], "a", buffering=1)
    fd = sys.stdin.fileno()
    pending = b""
    sess = quits = mesg = 0
    first = done = False
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        now = time.time()
        pending += chunk
        *records, pending = pending.split(b"\r")
        for record in records:
            m = COUNTERS.search(record)
            if not m:
                continue
            sess, quits, mesg = (int(g) for g in m.groups())
            if not first and mesg >= 1:
                first = True
                events.write(f"first {now:.6f} {sess}\n")
            if not done and mesg >= want:
                done = True
                events.write(f"all {now:.6f} {sess} {mesg}\n")
    m = COUNTERS.search(pending)
    if m:
        sess, quits, mesg = (int(g) for g in m.groups())
    events.write(f"final {sess} {quits} {mesg}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
