#!/usr/bin/env bash
# Server CPU per delivered SMTP message, with and without idle IMAP
# sessions on other accounts (issue 13: every commit used to wake every
# IMAP session, which then re-read its mailbox to find nothing new).
#
# A benchmark, run by hand; never in CI. Everything binds 127.0.0.1 only
# and every wait has a time limit.
#
#   bench/imap_idle_cpu.sh [BIN...]
#
# Each BIN (default $CARGO_TARGET_DIR/release/postern, built with
# `cargo build --release -p postern` if missing) gets a fresh data dir and
# one `postern up` (SMTP and IMAP listeners only), then:
#   1. MESSAGES messages over SMTP (Postfix's smtp-source, SMTP_SESSIONS
#      in parallel) to rcpt@localhost, with no IMAP session open;
#   2. IDLE_CONNS IMAP sessions LOGIN, SELECT INBOX and IDLE, spread over
#      ACCOUNTS other accounts (idle1..idleK@localhost);
#   3. MESSAGES more messages the same way.
# For each run: the server's CPU time (utime + stime from /proc/PID/stat,
# all threads) from the first message sent until STATUS shows them all
# delivered to rcpt's INBOX, divided by MESSAGES. The table gives ms per
# message and the ratio idle / none.
#
# Settings (environment):
#   MESSAGES=2000      messages per run
#   IDLE_CONNS=1000    idle IMAP sessions in the second run
#   ACCOUNTS=100       accounts the idle sessions log in to (round-robin)
#   SMTP_SESSIONS=4    smtp-source parallel sessions
#   MSG_LEN=2048       smtp-source message length
#   IDLE_WORKERS=16    client threads opening the idle sessions
#   PORT_BASE=27000    SMTP on PORT_BASE+1, IMAP on PORT_BASE+2
#   TIMEOUT=600        seconds any one step may take
#   KEEP=0             1 keeps the temp dir (configs, logs, data)
#   TMPDIR             where the temp dir goes

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}

MESSAGES=${MESSAGES:-2000}
IDLE_CONNS=${IDLE_CONNS:-1000}
ACCOUNTS=${ACCOUNTS:-100}
SMTP_SESSIONS=${SMTP_SESSIONS:-4}
MSG_LEN=${MSG_LEN:-2048}
IDLE_WORKERS=${IDLE_WORKERS:-16}
PORT_BASE=${PORT_BASE:-27000}
TIMEOUT=${TIMEOUT:-600}
KEEP=${KEEP:-0}
# The daemons read every POSTERN_* variable as configuration and refuse
# unknown ones: the settings above are this script's, not theirs.
for v in $(compgen -e POSTERN_); do export -n "$v"; done
SMTP_SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}

die() { echo "imap_idle_cpu: $*" >&2; exit 1; }
say() { echo "imap_idle_cpu: $*" >&2; }

for v in MESSAGES ACCOUNTS SMTP_SESSIONS MSG_LEN IDLE_WORKERS PORT_BASE TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
[[ $IDLE_CONNS =~ ^[0-9]+$ ]] || die "IDLE_CONNS must be a number, got '$IDLE_CONNS'"
[[ -x $SMTP_SOURCE ]] || die "no $SMTP_SOURCE (Postfix's smtp-source)"
command -v python3 >/dev/null || die "python3 is needed"

smtp_port=$((PORT_BASE + 1)) imap_port=$((PORT_BASE + 2))
password=bench-pw

# Both ends hold one descriptor per session, plus some.
want_fds=$((IDLE_CONNS + 1024))
if (($(ulimit -n) < want_fds)); then
    ulimit -n "$want_fds" 2>/dev/null || die "ulimit -n is $(ulimit -n); $want_fds needed"
fi

bins=("$@")
if ((${#bins[@]} == 0)); then
    bins=("$target/release/postern")
    if [[ ! -x ${bins[0]} ]]; then
        say "building the release postern"
        (cd "$repo" && cargo build --release -p postern) >&2
    fi
fi
for b in "${bins[@]}"; do [[ -x $b ]] || die "$b is not an executable"; done

work=$(mktemp -d "${TMPDIR:-/tmp}/imap_idle_cpu.XXXXXX")
server_pid="" idle_pid=""
cleanup() {
    local rc=$?
    [[ -n $idle_pid ]] && kill "$idle_pid" 2>/dev/null || true
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if ((KEEP)) || ((rc != 0)); then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cpu_ticks() { # utime + stime of the whole process (all threads), in ticks
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    # Fields after "(comm) ": state is 3, utime 14, stime 15 -> 12th, 13th.
    read -r -a f <<<"$stat"
    echo $((f[11] + f[12]))
}
hz=$(getconf CLK_TCK)

delivered=0
# One run: MESSAGES over SMTP, then wait until rcpt's INBOX has them all.
# Prints the server CPU ms per message.
measure() {
    local label=$1 t0 t1
    delivered=$((delivered + MESSAGES))
    t0=$(cpu_ticks "$server_pid")
    timeout "$TIMEOUT" "$SMTP_SOURCE" -s "$SMTP_SESSIONS" -m "$MESSAGES" -l "$MSG_LEN" \
        -f sender@example.org -t rcpt@localhost -M client.example.org \
        "127.0.0.1:$smtp_port" >"$dir/smtp-source.$label.log" 2>&1 ||
        { cat "$dir/smtp-source.$label.log" >&2; die "smtp-source failed ($label)"; }
    python3 "$here/imap_idle_cpu.py" wait "127.0.0.1:$imap_port" rcpt@localhost "$password" \
        "$delivered" "$TIMEOUT" >"$dir/wait.$label.log" ||
        { cat "$dir/wait.$label.log" >&2; die "the messages were not all delivered ($label)"; }
    t1=$(cpu_ticks "$server_pid")
    awk -v t="$((t1 - t0))" -v hz="$hz" -v m="$MESSAGES" 'BEGIN { printf "%.3f", t * 1000 / hz / m }'
}

results=()
n=0
for bin in "${bins[@]}"; do
    n=$((n + 1))
    dir=$work/run$n
    mkdir -p "$dir"
    conns=$((IDLE_CONNS + 100))
    cat >"$dir/postern.toml" <<EOF
log = "warn"

[limits]
max_connections = $conns
max_connections_per_ip = $conns

[smtp]
listen = ["127.0.0.1:$smtp_port"]
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
EOF
    say "$bin: adding rcpt and $ACCOUNTS idle accounts"
    users=(rcpt@localhost)
    for ((i = 1; i <= ACCOUNTS; i++)); do users+=("idle$i@localhost"); done
    # The first one alone: it creates the database (migrations).
    printf '%s\n' "$password" |
        "$bin" --data-dir "$dir/data" --config "$dir/postern.toml" user add rcpt@localhost \
            --password-stdin >/dev/null || die "postern user add failed"
    printf '%s\n' "${users[@]:1}" | timeout "$TIMEOUT" xargs -P 2 -I{} sh -c \
        'printf "%s\n" "$1" | "$2" --data-dir "$3" --config "$4" user add "$5" --password-stdin >/dev/null' \
        _ "$password" "$bin" "$dir/data" "$dir/postern.toml" {} ||
        die "postern user add failed"

    for p in "$smtp_port" "$imap_port"; do
        port_in_use "$p" && die "127.0.0.1:$p is in use (set PORT_BASE)"
    done
    # Postern reads every POSTERN_* variable as a config key.
    env -u POSTERN_BIN "$bin" --data-dir "$dir/data" --config "$dir/postern.toml" up \
        >"$dir/stdout" 2>"$dir/stderr" &
    server_pid=$!
    for ((i = 0; i < 300; i++)); do
        grep -q '^postern: ready' "$dir/stdout" 2>/dev/null && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$dir/stderr" >&2; die "postern exited early"; }
        sleep 0.1
    done
    ((i < 300)) || die "postern did not print 'postern: ready' within 30 s"

    say "$bin: $MESSAGES messages, no IMAP session"
    none=$(measure none)

    idle=""
    if ((IDLE_CONNS > 0)); then
        say "$bin: opening $IDLE_CONNS IDLE sessions"
        idle_users=("${users[@]:1}")
        coproc IDLE { exec python3 "$here/imap_idle_cpu.py" idle "127.0.0.1:$imap_port" \
            "$password" "$IDLE_CONNS" "$IDLE_WORKERS" "$TIMEOUT" "${idle_users[@]}"; }
        idle_pid=$IDLE_PID
        read -r -t "$TIMEOUT" line <&"${IDLE[0]}" || die "the IDLE sessions did not open"
        [[ $line == ready* ]] || die "IDLE sessions: $line"
        sleep 2 # let logins' after-effects settle
        say "$bin: $MESSAGES messages, $IDLE_CONNS sessions in IDLE"
        idle=$(measure idle)
        exec {IDLE[1]}>&-
        read -r -t 60 line <&"${IDLE[0]}" || line="untagged ?"
        untagged=${line#untagged }
        wait "$idle_pid" 2>/dev/null || true
        idle_pid=""
    fi
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    results+=("$bin|$none|${idle:--}|${untagged:--}")
done

printf '\nserver CPU per delivered message (%s messages, %s over SMTP in parallel; %s idle IMAP sessions on %s other accounts)\n' \
    "$MESSAGES" "$SMTP_SESSIONS" "$IDLE_CONNS" "$ACCOUNTS"
printf '%-50s %12s %12s %7s %9s\n' binary "none ms/msg" "idle ms/msg" ratio "idle out"
for r in "${results[@]}"; do
    IFS='|' read -r b none idle untagged <<<"$r"
    ratio=$(awk -v a="$none" -v b="$idle" 'BEGIN { if (b == "-" || a == 0) print "-"; else printf "%.2fx", b / a }')
    printf '%-50s %12s %12s %7s %9s\n' "$b" "$none" "$idle" "$ratio" "$untagged"
done
