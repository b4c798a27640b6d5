#!/usr/bin/env bash
# Capture: Postern (postern up --capture) vs MailDev, as mail fixtures.
#
# A benchmark, run by hand; never in CI. Needs root (it may install
# postfix for smtp-source and MailDev from npm). Everything binds
# 127.0.0.1 only, and the whole run is bounded: every wait has a time limit.
#
#   bench/capture.sh [--messages N] [--total N] [--repeat N]
#                    [--only postern|maildev|both] [--keep]
#
# Settings (flags win over environment variables of the same meaning):
#   MESSAGES=5000      messages smtp-source sends (the ingest figure)
#   SESSIONS=20        smtp-source sessions in parallel
#   SIZE=4096          smtp-source payload bytes (-l); fill messages too
#   SOURCE_OPTS=""     more smtp-source options (e.g. "-d": several
#                      messages per connection; "-N": a new recipient
#                      address, so a new captured mailbox, per message)
#   TOTAL=10000        messages held for the queries and the memory figure:
#                      TOTAL - MESSAGES varied messages are added with
#                      bench/capture_load.py fill after the ingest
#   FILL_SESSIONS=8    SMTP sessions of that fill
#   CLIENTS=1,4        client counts for the query latencies
#   REQUESTS=200       timed requests per client and query (3 untimed first)
#   BUDGET=20          seconds one query/client-count pair may take; the
#                      slow ones stop early (at least 10 requests a client)
#   WAIT_SAMPLES=100   messages sent one at a time for the wait figure
#   REPEAT=3           runs per server (servers alternate); the table
#                      shows the median of each figure
#   ONLY=both          postern | maildev | both
#   POSTERN_SMTP=23025 POSTERN_HTTP=23080   Postern's ports on 127.0.0.1
#   MAILDEV_SMTP=23125 MAILDEV_HTTP=23180   MailDev's ports on 127.0.0.1
#   ACCEPT_TIMEOUT=900 seconds smtp-source (and the fill) may take
#   LIST_TIMEOUT=120   seconds after smtp-source until the API must list all
#   POSTERN_BIN        default $CARGO_TARGET_DIR/release/postern (target/
#                      when CARGO_TARGET_DIR is unset); built with
#                      `cargo build --release -p postern` if missing
#   POSTERN_LOG=warn   Postern's log level
#   POSTERN_EXTRA="TOML text"  appended to Postern's config, for experiments
#   MAILDEV_VERSION=3.0.0  the npm maildev installed into the temp dir
#   MAILDEV_DIR        an existing directory with node_modules/maildev, to
#                      skip the npm install
#   KEEP=0             1 keeps the temp dir (configs, logs, data); it is
#                      also kept when the script fails
#   TMPDIR             where the temp dir goes (a real disk: Postern syncs
#                      every message before its 250)
#
# Each run, per server, on a fresh server with an empty store:
#   ingest    `smtp-source -s SESSIONS -m MESSAGES -l SIZE` (a connection per
#             message unless SOURCE_OPTS has -d; each message has its own
#             Message-Id, so no two are the same bytes) to one address;
#             MESSAGES / seconds from its start to its end (the last 250),
#             and to the first answer of the list endpoint that counts all
#             MESSAGES (polled from the end of smtp-source, back to back).
#   fill      TOTAL - MESSAGES varied messages (bench/capture_load.py), not
#             timed: now the server holds TOTAL.
#   memory    RSS (VmRSS, summed over the process and its descendants)
#             2 s after the fill: Postern's `postern up`, MailDev's node.
#   queries   list (first page of 50, newest first), a header search (an
#             address in To: of 1 % of the fill messages) and a body-word
#             search (a word in the text of 1 % of them), p50 and p95 over
#             REQUESTS requests per client, for each count in CLIENTS, each
#             client on its own keep-alive connection.
#   wait      WAIT_SAMPLES messages sent one at a time, each to a new
#             address: ms from the client's 250 (end of DATA) to the API's
#             answer naming it. Postern: /api/v1/wait, parked before the
#             message is sent. MailDev has no wait: its search is polled
#             back to back until the message is listed.
#   memory    RSS again after the queries and the waits.
#
# MailDev runs with its defaults (in-memory store, .eml files written to
# its temp dir) but for the ports and 127.0.0.1; Postern is `postern up
# --capture` with only its SMTP and HTTP listeners. The clients share the
# machine's CPUs with the server.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}

MESSAGES=${MESSAGES:-5000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
SOURCE_OPTS=${SOURCE_OPTS:-}
TOTAL=${TOTAL:-10000}
FILL_SESSIONS=${FILL_SESSIONS:-8}
CLIENTS=${CLIENTS:-1,4}
REQUESTS=${REQUESTS:-200}
BUDGET=${BUDGET:-20}
WAIT_SAMPLES=${WAIT_SAMPLES:-100}
REPEAT=${REPEAT:-3}
ONLY=${ONLY:-both}
POSTERN_SMTP=${POSTERN_SMTP:-23025}
POSTERN_HTTP=${POSTERN_HTTP:-23080}
MAILDEV_SMTP=${MAILDEV_SMTP:-23125}
MAILDEV_HTTP=${MAILDEV_HTTP:-23180}
ACCEPT_TIMEOUT=${ACCEPT_TIMEOUT:-900}
LIST_TIMEOUT=${LIST_TIMEOUT:-120}
POSTERN_BIN=${POSTERN_BIN:-$target/release/postern}
POSTERN_LOG=${POSTERN_LOG:-warn}
POSTERN_EXTRA=${POSTERN_EXTRA:-}
MAILDEV_VERSION=${MAILDEV_VERSION:-3.0.0}
MAILDEV_DIR=${MAILDEV_DIR:-}
KEEP=${KEEP:-0}
# The daemons read every POSTERN_* variable as configuration and refuse
# unknown ones: the settings above are this script's, not theirs.
for v in $(compgen -e POSTERN_); do export -n "$v"; done

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while (($#)); do
    case $1 in
        -m | --messages) MESSAGES=$2; shift 2 ;;
        -t | --total) TOTAL=$2; shift 2 ;;
        -r | --repeat) REPEAT=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "capture: unknown argument: $1 (try --help)" >&2; exit 64 ;;
    esac
done

die() { echo "capture: $*" >&2; exit 1; }
say() { echo "capture: $*" >&2; }

for v in MESSAGES SESSIONS SIZE TOTAL FILL_SESSIONS REQUESTS BUDGET WAIT_SAMPLES REPEAT \
    POSTERN_SMTP POSTERN_HTTP MAILDEV_SMTP MAILDEV_HTTP ACCEPT_TIMEOUT LIST_TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
[[ $CLIENTS =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "CLIENTS must be a comma list of counts, got '$CLIENTS'"
((TOTAL >= MESSAGES)) || die "TOTAL ($TOTAL) must be at least MESSAGES ($MESSAGES)"
case $ONLY in
    both) servers=(postern maildev) ;;
    postern | maildev) servers=("$ONLY") ;;
    *) die "ONLY must be postern, maildev or both, got '$ONLY'" ;;
esac
want() { [[ " ${servers[*]} " == *" $1 "* ]]; }

# --- tools --------------------------------------------------------------------

export PATH=$PATH:/usr/sbin:/sbin
((EUID == 0)) || die "must run as root (it may install postfix and runs MailDev from a temp dir)"
if ! command -v smtp-source >/dev/null; then
    say "installing postfix (for smtp-source)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y postfix >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y postfix >/dev/null; } ||
        die "apt-get install postfix failed"
fi
command -v smtp-source >/dev/null || die "smtp-source not found after installing postfix"
command -v python3 >/dev/null || die "python3 is needed (bench/capture_load.py)"
if want maildev; then
    command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are needed for MailDev"
fi
if want postern && [[ ! -x $POSTERN_BIN ]]; then
    [[ $POSTERN_BIN == "$target/release/postern" ]] ||
        die "POSTERN_BIN=$POSTERN_BIN is not an executable"
    say "building postern (cargo build --release -p postern)"
    (cd "$repo" && cargo build --release -p postern) ||
        die "cannot build postern; run with --only maildev to bench MailDev alone"
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- cleanup ------------------------------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/postern-capture.XXXXXX")
chmod 755 "$work"
load_pid="" server_pid="" server_name=""

stop_pid() { # PID NAME SECONDS: SIGTERM, then SIGKILL after SECONDS.
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    for ((i = 0; i < $3 * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    say "$2 $pid did not stop within $3 s of SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_server() {
    [[ -n $server_pid ]] || return 0
    local pid=$server_pid
    server_pid=""
    stop_pid "$pid" "$server_name" 20
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM HUP
    [[ -n $load_pid ]] && kill -TERM "$load_pid" 2>/dev/null && wait "$load_pid" 2>/dev/null
    stop_server
    if ((KEEP)) || ((rc == 1 || rc == 2)); then
        say "kept $work"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- MailDev ------------------------------------------------------------------

if want maildev; then
    if [[ -z $MAILDEV_DIR ]]; then
        MAILDEV_DIR=$work/maildev-install
        mkdir -p "$MAILDEV_DIR"
        say "installing maildev@$MAILDEV_VERSION from npm into $MAILDEV_DIR"
        (cd "$MAILDEV_DIR" && npm init -y >/dev/null &&
            npm install --no-audit --no-fund "maildev@$MAILDEV_VERSION" >npm.log 2>&1) ||
            { tail -n 20 "$MAILDEV_DIR/npm.log" >&2; die "npm install maildev failed"; }
    fi
    maildev_js=$MAILDEV_DIR/node_modules/maildev/dist/bin/maildev.js
    [[ -f $maildev_js ]] || die "no $maildev_js (MAILDEV_DIR=$MAILDEV_DIR)"
    maildev_version=$(node -p "require('$MAILDEV_DIR/node_modules/maildev/package.json').version")
fi

# --- measuring ----------------------------------------------------------------

# rss PID: KiB of VmRSS summed over PID and its descendants.
rss() {
    local total=0 pid kids kb
    local queue=("$1")
    while ((${#queue[@]})); do
        pid=${queue[0]}
        queue=("${queue[@]:1}")
        kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${kb:-0}))
        kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
        for k in $kids; do queue+=("$k"); done
    done
    echo "$total"
}

load() { python3 "$here/capture_load.py" "$@"; }

# Results: "<server> <figure> <value>" lines; one value per run.
results=$work/results
: >"$results"
note() { echo "$1 $2 $3" >>"$results"; }

# measure SERVER DIR SMTP HTTP PID
measure() {
    local s=$1 dir=$2 smtp=$3 http=$4 pid=$5 rc=0 line t_start t_end listed took
    sync
    # shellcheck disable=SC2086 # SOURCE_OPTS is a list of options
    local cmd=(smtp-source -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" $SOURCE_OPTS
        -M bench.localdomain -f app@bench.localdomain -t rcpt@ingest.test "127.0.0.1:$smtp")
    t_start=$EPOCHREALTIME
    timeout "$ACCEPT_TIMEOUT" "${cmd[@]}" >"$dir/smtp-source.log" 2>&1 &
    load_pid=$!
    wait "$load_pid" || rc=$?
    load_pid=""
    t_end=$EPOCHREALTIME
    ((rc != 124)) || die "$s: smtp-source did not finish within ACCEPT_TIMEOUT=${ACCEPT_TIMEOUT}s"
    ((rc == 0)) || { tail -n 5 "$dir/smtp-source.log" >&2; die "$s: smtp-source failed (exit $rc)"; }
    line=$(load listed "$s" "$http" "$MESSAGES" "$LIST_TIMEOUT") ||
        die "$s: the API did not list $MESSAGES messages within ${LIST_TIMEOUT}s ($line)"
    listed=${line%% *}
    note "$s" "ingest" "$(awk -v n="$MESSAGES" -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.1f", n / (b - a) }')"
    note "$s" "ingest_listed" "$(awk -v n="$MESSAGES" -v a="$t_start" -v b="$listed" 'BEGIN { printf "%.1f", n / (b - a) }')"
    say "$s run $run: ingest $MESSAGES in $(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.2f", b - a }') s," \
        "all listed after $(awk -v a="$t_start" -v b="$listed" 'BEGIN { printf "%.2f", b - a }') s"

    if ((TOTAL > MESSAGES)); then
        line=$(timeout "$ACCEPT_TIMEOUT" python3 "$here/capture_load.py" fill "$smtp" \
            $((TOTAL - MESSAGES)) "$FILL_SESSIONS" "$SIZE") || die "$s: fill failed"
        say "$s run $run: filled $((TOTAL - MESSAGES)) more in ${line%% *} s"
        line=$(load listed "$s" "$http" "$TOTAL" "$LIST_TIMEOUT") ||
            die "$s: the API did not list $TOTAL messages within ${LIST_TIMEOUT}s ($line)"
    fi
    sleep 2
    took=$(rss "$pid")
    note "$s" "rss" "$((took / 1024))"
    say "$s run $run: RSS with $TOTAL messages: $((took / 1024)) MiB"

    load latency "$s" "$http" "$CLIENTS" "$REQUESTS" "$BUDGET" >"$dir/latency" ||
        die "$s: the query load failed"
    local _ q c p50 p95 n m
    while read -r _ q c p50 p95 n m; do
        note "$s" "$q.$c.p50" "$p50"
        note "$s" "$q.$c.p95" "$p95"
        note "$s" "$q.matches" "$m"
        say "$s run $run: $q, $c client(s): p50 $p50 ms, p95 $p95 ms ($n requests; $m match)"
    done <"$dir/latency"

    line=$(load wait "$s" "$http" "$smtp" "$WAIT_SAMPLES") || die "$s: the wait load failed"
    read -r _ p50 p95 n _ _ <<<"$line"
    note "$s" "wait.p50" "$p50"
    note "$s" "wait.p95" "$p95"
    say "$s run $run: 250 -> API answer: p50 $p50 ms, p95 $p95 ms ($n messages)"

    took=$(rss "$pid")
    note "$s" "rss_after" "$((took / 1024))"
}

# --- Postern ------------------------------------------------------------------

postern_run() {
    local dir=$work/postern.$run i
    mkdir -p "$dir"
    cat >"$dir/postern.toml" <<EOF
log = "$POSTERN_LOG"

[smtp]
listen = ["127.0.0.1:$POSTERN_SMTP"]
submission_listen = []
submissions_listen = []

[pop3]
listen = []
pop3s_listen = []

[imap]
listen = []
imaps_listen = []

[http]
listen = ["127.0.0.1:$POSTERN_HTTP"]
$POSTERN_EXTRA
EOF
    for i in "$POSTERN_SMTP" "$POSTERN_HTTP"; do
        port_in_use "$i" && die "127.0.0.1:$i is in use (set POSTERN_SMTP / POSTERN_HTTP)"
    done
    # Postern reads every POSTERN_* variable as a config key; these are ours.
    env -u POSTERN_BIN -u POSTERN_SMTP -u POSTERN_HTTP -u POSTERN_LOG -u POSTERN_EXTRA \
        "$POSTERN_BIN" --data-dir "$dir/data" --config "$dir/postern.toml" up --capture \
        >"$dir/stdout" 2>"$dir/stderr" &
    server_pid=$! server_name=postern
    for ((i = 0; i < 300; i++)); do
        grep -q '^postern: ready' "$dir/stdout" 2>/dev/null && break
        kill -0 "$server_pid" 2>/dev/null ||
            { cat "$dir/stdout" "$dir/stderr" >&2; server_pid=""; die "postern up exited early"; }
        sleep 0.1
    done
    ((i < 300)) || { cat "$dir/stdout" "$dir/stderr" >&2; die "postern did not print 'postern: ready' within 30 s"; }

    measure postern "$dir" "$POSTERN_SMTP" "$POSTERN_HTTP" "$server_pid"
    stop_server
    if [[ $POSTERN_LOG == warn && -s $dir/stderr ]]; then
        say "postern stderr (last lines):"
        tail -n 5 "$dir/stderr" >&2
    fi
    ((KEEP)) || rm -rf "$dir"
}

# --- MailDev ------------------------------------------------------------------

maildev_run() {
    local dir=$work/maildev.$run i
    mkdir -p "$dir/tmp"
    for i in "$MAILDEV_SMTP" "$MAILDEV_HTTP"; do
        port_in_use "$i" && die "127.0.0.1:$i is in use (set MAILDEV_SMTP / MAILDEV_HTTP)"
    done
    # TMPDIR: where MailDev writes its .eml files by default.
    TMPDIR=$dir/tmp node "$maildev_js" --smtp "$MAILDEV_SMTP" --web "$MAILDEV_HTTP" \
        --ip 127.0.0.1 --web-ip 127.0.0.1 >"$dir/stdout" 2>"$dir/stderr" &
    server_pid=$! server_name=maildev
    for ((i = 0; i < 300; i++)); do
        if port_in_use "$MAILDEV_SMTP" && port_in_use "$MAILDEV_HTTP"; then break; fi
        kill -0 "$server_pid" 2>/dev/null ||
            { cat "$dir/stdout" "$dir/stderr" >&2; server_pid=""; die "maildev exited early"; }
        sleep 0.1
    done
    ((i < 300)) || { cat "$dir/stdout" "$dir/stderr" >&2; die "maildev did not listen within 30 s"; }

    measure maildev "$dir" "$MAILDEV_SMTP" "$MAILDEV_HTTP" "$server_pid"
    stop_server
    ((KEEP)) || rm -rf "$dir"
}

# --- main ---------------------------------------------------------------------

load1=$(cut -d' ' -f1 /proc/loadavg)
say "ingest: smtp-source -s $SESSIONS -m $MESSAGES -l $SIZE${SOURCE_OPTS:+ $SOURCE_OPTS}; $TOTAL messages for the queries; repeat $REPEAT; load average now $load1"
say "work dir: $work"
for ((run = 1; run <= REPEAT; run++)); do
    for s in "${servers[@]}"; do
        "${s}_run"
    done
done

# median SERVER FIGURE
median() {
    awk -v k="$1 $2" '
        $1 " " $2 == k { v[n++] = $3 }
        END {
            if (n == 0) { print "-"; exit }
            for (i = 0; i < n; i++) for (j = i + 1; j < n; j++)
                if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
            m = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
            printf "%.6g", m
        }' "$results"
}
cell() { if want "$1"; then median "$1" "$2"; else echo "-"; fi; }
# gain A B HIGHER: how many times Postern (A) is better than MailDev (B);
# HIGHER=1 when higher is better (rates), 0 when lower is (times, memory).
gain() {
    if [[ $1 =~ ^-?[0-9.]+$ && $2 =~ ^-?[0-9.]+$ ]]; then
        awk -v a="$1" -v b="$2" -v h="$3" 'BEGIN {
            if (h) { if (b <= 0) { print "-"; exit } r = a / b }
            else { if (a <= 0) { print "-"; exit } r = b / a }
            printf (r >= 10) ? "%.0fx" : (r >= 1) ? "%.1fx" : "%.2fx", r }'
    else
        echo "-"
    fi
}
row() { # LABEL FIGURE HIGHER TARGET
    local p m
    p=$(cell postern "$2") m=$(cell maildev "$2")
    printf '%-34s %10s %10s %8s  %s\n' "$1" "$p" "$m" "$(gain "$p" "$m" "$3")" "$4"
}

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
fill=$((TOTAL - MESSAGES))
echo
echo "ingest: smtp-source -s $SESSIONS -m $MESSAGES -l $SIZE${SOURCE_OPTS:+ $SOURCE_OPTS} (one address);" \
    "queries and memory with $TOTAL messages ($fill varied ones added)"
((REPEAT > 1)) && echo "median of $REPEAT runs per server"
printf '%-34s %10s %10s %8s  %s\n' "" postern maildev gain target
row "ingest msgs/s (to last 250)" ingest 1 ">= 10x"
row "ingest msgs/s (to API list)" ingest_listed 1 ">= 10x"
IFS=, read -ra counts <<<"$CLIENTS"
for q in list search-to search-body; do
    for c in "${counts[@]}"; do
        row "$q, $c client(s), p50 ms" "$q.$c.p50" 0 "$( ((c == 1)) && echo "< 5 ms" || true)"
        row "$q, $c client(s), p95 ms" "$q.$c.p95" 0 ""
    done
done
row "wait: 250 -> answer p50 ms" wait.p50 0 "< 5 ms"
row "wait: 250 -> answer p95 ms" wait.p95 0 ""
row "RSS MiB, $TOTAL msgs" rss 0 ">= 5x"
row "RSS MiB, after the queries" rss_after 0 ""
echo "(gain: how many times Postern is better: faster, or smaller)"
echo "matches: search-to $(cell postern search-to.matches) / $(cell maildev search-to.matches)," \
    "search-body $(cell postern search-body.matches) / $(cell maildev search-body.matches) (postern / maildev)"
echo "calls: list = postern GET /api/v1/messages?limit=50, maildev GET /api/email/summary?limit=50;"
echo "  search-to = postern /api/v1/search?query=to:box7@fill.test, maildev /api/email/summary?search=box7@fill.test"
echo "  (MailDev's paged API has only a free-text search over subject, from, to, cc and text;"
echo "  its field filters, /api/email?to.address=, answer with whole messages and no paging);"
echo "  search-body = the word zebrafish on both; wait = postern /api/v1/wait?after=CURSOR&query=to:ADDR,"
echo "  maildev has no wait (nor a cursor): its search for ADDR polled back to back until listed"
echo
echo "machine: $(nproc) cpus ($cpu), Linux $(uname -r), load average at start $load1"
if want postern; then
    echo "postern: $("$POSTERN_BIN" --version 2>/dev/null || echo "version unknown") (postern up --capture;" \
        "SMTP and HTTP listeners only${POSTERN_EXTRA:+; extra: ${POSTERN_EXTRA//$'\n'/ }})"
fi
if want maildev; then
    echo "maildev: $maildev_version on node $(node --version) (defaults: in-memory store; ports, 127.0.0.1)"
fi
echo "load: smtp-source from postfix $(postconf -h mail_version 2>/dev/null || echo '?'), bench/capture_load.py (python $(python3 -c 'import platform; print(platform.python_version())'))"
