#!/usr/bin/env bash
# Server CPU per flag change in one large mailbox that many IMAP sessions
# have selected and sit in IDLE on: each change wakes every session, which
# then finds out what changed (by reading the mailbox's change feed, or
# before that by comparing the whole mailbox index with its view).
#
# A benchmark, run by hand; never in CI. Everything binds 127.0.0.1 only
# and every wait has a time limit.
#
#   bench/imap_feed_cpu.sh [BIN...]
#
# The first BIN (default $CARGO_TARGET_DIR/release/postern, built with
# `cargo build --release -p postern` if missing) fills a data dir: one
# account, MESSAGES messages in its INBOX (IMAP APPEND). Each BIN then
# runs `postern up` (IMAP only) on a copy of it, SESSIONS sessions select
# INBOX and IDLE, and one more session makes CHANGES flag changes on
# distinct messages, one at a time, each waited for until every idle
# session was told (bench/imap_feed_cpu.py). The table gives the server's
# CPU (utime + stime, all threads) per change.
#
# Settings (environment):
#   MESSAGES=20000   messages in the mailbox
#   SESSIONS=50      sessions in IDLE on it
#   CHANGES=300      flag changes measured
#   FILL_THREADS=8   sessions that APPEND in parallel
#   PORT_BASE=27100  IMAP on PORT_BASE+2
#   TIMEOUT=600      seconds any one step may take
#   KEEP=0           1 keeps the temp dir (configs, logs, data)
#   TMPDIR           where the temp dir goes

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}

MESSAGES=${MESSAGES:-20000}
SESSIONS=${SESSIONS:-50}
CHANGES=${CHANGES:-300}
FILL_THREADS=${FILL_THREADS:-8}
PORT_BASE=${PORT_BASE:-27100}
TIMEOUT=${TIMEOUT:-600}
KEEP=${KEEP:-0}

die() { echo "imap_feed_cpu: $*" >&2; exit 1; }
say() { echo "imap_feed_cpu: $*" >&2; }

for v in MESSAGES SESSIONS CHANGES FILL_THREADS PORT_BASE TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
((CHANGES <= MESSAGES)) || die "CHANGES ($CHANGES) must not exceed MESSAGES ($MESSAGES)"
command -v python3 >/dev/null || die "python3 is needed"

imap_port=$((PORT_BASE + 2))
user=bench@localhost password=bench-pw

bins=("$@")
if ((${#bins[@]} == 0)); then
    bins=("$target/release/postern")
    if [[ ! -x ${bins[0]} ]]; then
        say "building the release postern"
        (cd "$repo" && cargo build --release -p postern) >&2
    fi
fi
for b in "${bins[@]}"; do [[ -x $b ]] || die "$b is not an executable"; done

work=$(mktemp -d "${TMPDIR:-/tmp}/imap_feed_cpu.XXXXXX")
server_pid=""
cleanup() {
    local rc=$?
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if ((KEEP)) || ((rc != 0)); then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

conns=$((SESSIONS + FILL_THREADS + 10))
cat >"$work/postern.toml" <<TOML
log = "warn"

[limits]
max_connections = $conns
max_connections_per_ip = $conns

[smtp]
listen = []
submission_listen = []
submissions_listen = []

[pop3]
listen = []
pop3s_listen = []

[imap]
listen = ["127.0.0.1:$imap_port"]
imaps_listen = []
max_connections_per_user = $conns

[http]
listen = []
TOML

# Starts `postern up` ($1) on data dir $2; sets server_pid.
start() {
    port_in_use "$imap_port" && die "127.0.0.1:$imap_port is in use (set PORT_BASE)"
    # Postern reads every POSTERN_* variable as a config key.
    env -u POSTERN_BIN "$1" --data-dir "$2" --config "$work/postern.toml" up \
        >"$2.stdout" 2>"$2.stderr" &
    server_pid=$!
    local i
    for ((i = 0; i < 300; i++)); do
        grep -q '^postern: ready' "$2.stdout" 2>/dev/null && return
        kill -0 "$server_pid" 2>/dev/null || { cat "$2.stderr" >&2; die "postern exited early"; }
        sleep 0.1
    done
    die "postern did not print 'postern: ready' within 30 s"
}

stop() {
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

say "filling $user's INBOX with $MESSAGES messages (${bins[0]})"
printf '%s\n' "$password" |
    "${bins[0]}" --data-dir "$work/template" --config "$work/postern.toml" user add "$user" \
        --password-stdin >/dev/null || die "postern user add failed"
start "${bins[0]}" "$work/template"
timeout "$TIMEOUT" python3 "$here/imap_feed_cpu.py" fill "127.0.0.1:$imap_port" "$user" \
    "$password" "$MESSAGES" "$FILL_THREADS" "$TIMEOUT" >&2 || die "filling failed"
stop

results=()
n=0
for bin in "${bins[@]}"; do
    n=$((n + 1))
    data=$work/run$n
    cp -a "$work/template" "$data"
    start "$bin" "$data"
    say "$bin: $SESSIONS sessions in IDLE, $CHANGES flag changes"
    out=$(timeout "$TIMEOUT" python3 "$here/imap_feed_cpu.py" run "127.0.0.1:$imap_port" \
        "$user" "$password" "$SESSIONS" "$CHANGES" "$server_pid" "$TIMEOUT") ||
        { echo "$out" >&2; die "the run failed ($bin)"; }
    stop
    ms=$(awk '/^ms_per_change/ { print $2 }' <<<"$out")
    secs=$(awk '/^seconds/ { print $2 }' <<<"$out")
    results+=("$bin|$ms|$secs")
done

printf '\nserver CPU per flag change (%s messages in one INBOX, %s sessions in IDLE on it, %s changes)\n' \
    "$MESSAGES" "$SESSIONS" "$CHANGES"
printf '%-50s %14s %10s\n' binary "ms/change" seconds
for r in "${results[@]}"; do
    IFS='|' read -r b ms secs <<<"$r"
    printf '%-50s %14s %10s\n' "$b" "$ms" "$secs"
done
