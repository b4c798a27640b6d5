#!/usr/bin/env bash
# Relay: Postern vs a private Postfix, both relaying to Postfix's smtp-sink.
#
# A benchmark, run by hand; never in CI. Needs root (it may install postfix
# and runs a throwaway Postfix instance). Everything binds 127.0.0.1 only,
# and the whole run is bounded: every wait has a time limit.
#
#   bench/relay.sh [--messages N] [--repeat N] [--sessions N] [--size BYTES]
#                  [--only postern|postfix|both] [--keep]
#
# Settings (flags win over environment variables of the same meaning):
#   MESSAGES=2000      messages sent to each server per run
#   REPEAT=3           runs per server; the table shows the median
#   SESSIONS=10        smtp-source sessions in parallel
#   SIZE=2048          message size in bytes (smtp-source -l)
#   ONLY=both          postern | postfix | both
#   POSTFIX_PORT=2626  Postfix smtpd on 127.0.0.1
#   POSTERN_PORT=2726  Postern smtp listener on 127.0.0.1
#   SINK_PORT=2826     smtp-sink on 127.0.0.1 (the next hop of both)
#   ACCEPT_TIMEOUT=600 seconds smtp-source may take
#   RELAY_TIMEOUT=900  seconds from the start of smtp-source until the sink
#                      must have every message
#   POSTERN_BIN        default $CARGO_TARGET_DIR/release/postern (target/
#                      when CARGO_TARGET_DIR is unset); built with cargo if
#                      missing
#   POSTERN_LOG=warn   Postern's log level (info logs one line per relayed
#                      message, in postern.N/stderr with --keep)
#   POSTFIX_EXTRA="name=value ..."  more main.cf settings, for experiments
#   POSTERN_EXTRA="TOML text"       appended to Postern's config, for
#                      experiments (e.g. POSTERN_EXTRA=$'[queue]\nconcurrency = 8')
#   SINK_OPTS="..."    more smtp-sink options, for experiments (e.g.
#                      SINK_OPTS="-W ehlo:1" to make every new session cost
#                      a second, as a distant or slow next hop would)
#   KEEP=0             1 keeps the temp dir (configs, logs, queues); it is
#                      also kept when the script fails or a run times out
#   TMPDIR             where the temp dir goes (must be a real disk: both
#                      servers fsync a message before replying 250)
#
# Each run, per server: a fresh smtp-sink and a fresh server (empty queue),
# then `smtp-source -d -s SESSIONS -m MESSAGES -l SIZE -t rcpt@example.org`
# into the server's SMTP port. The server accepts for example.org from
# 127.0.0.0/8 without AUTH and relays everything to the sink, without TLS.
# With REPEAT>1 the servers alternate.
#
# Figures:
#   relay msgs/s   MESSAGES / (time the sink has received all of them - the
#                  start of smtp-source): end-to-end relay throughput
#   accept s       wall time of smtp-source alone (every message queued,
#                  250 after the dot; the relaying overlaps it)
#   sink sessions  SMTP sessions the server opened to the sink, median over
#                  the runs (fewer = sessions reused for several messages)
#
# How the sink counts: `smtp-sink -c` writes "sess= quit= mesg=" counters on
# every final dot, QUIT and session end; bench/relay_sink_count.py reads
# them unbuffered from a FIFO and notes the wall clock when mesg reaches
# MESSAGES. The sink accepts everything and advertises its defaults
# (PIPELINING, 8BITMIME, ...); the test messages are 7-bit. A sink that
# got more than MESSAGES (a duplicate delivery) is reported as a warning.
#
# The two servers are set up alike, each at its defaults but for what
# relaying needs:
#   Postfix  private instance (own config, queue and data directories under
#            the temp dir, logging to a file there, no chroot), smtpd only
#            on 127.0.0.1:POSTFIX_PORT, mynetworks = 127.0.0.0/8, no local
#            domains, relayhost = [127.0.0.1]:SINK_PORT,
#            smtp_tls_security_level = none. The queue manager and the smtp
#            client keep their defaults: destination concurrency 20 (starting
#            at 5), connection cache on demand, in_flow_delay 1s.
#   Postern  `postern up` with only the smtp listener (submission, POP3 and
#            IMAP listeners off), [relay] trusted_networks = 127.0.0.0/8,
#            smarthost = 127.0.0.1:SINK_PORT with tls = "none"; [queue]
#            and the other [relay] settings at their defaults (concurrency
#            64, max_sessions_per_destination 20).
# Both keep their durability defaults (the queue file is on disk before
# the 250).

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}

MESSAGES=${MESSAGES:-2000}
REPEAT=${REPEAT:-3}
SESSIONS=${SESSIONS:-10}
SIZE=${SIZE:-2048}
ONLY=${ONLY:-both}
POSTFIX_PORT=${POSTFIX_PORT:-2626}
POSTERN_PORT=${POSTERN_PORT:-2726}
SINK_PORT=${SINK_PORT:-2826}
ACCEPT_TIMEOUT=${ACCEPT_TIMEOUT:-600}
RELAY_TIMEOUT=${RELAY_TIMEOUT:-900}
POSTERN_BIN=${POSTERN_BIN:-$target/release/postern}
POSTERN_LOG=${POSTERN_LOG:-warn}
POSTFIX_EXTRA=${POSTFIX_EXTRA:-}
POSTERN_EXTRA=${POSTERN_EXTRA:-}
SINK_OPTS=${SINK_OPTS:-}
KEEP=${KEEP:-0}
# The daemons read every POSTERN_* variable as configuration and refuse
# unknown ones: the settings above are this script's, not theirs.
for v in $(compgen -e POSTERN_); do export -n "$v"; done

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while (($#)); do
    case $1 in
        -m | --messages) MESSAGES=$2; shift 2 ;;
        -r | --repeat) REPEAT=$2; shift 2 ;;
        -s | --sessions) SESSIONS=$2; shift 2 ;;
        -l | --size) SIZE=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "relay: unknown argument: $1 (try --help)" >&2; exit 64 ;;
    esac
done

die() { echo "relay: $*" >&2; exit 1; }
say() { echo "relay: $*" >&2; }

for v in MESSAGES REPEAT SESSIONS SIZE POSTFIX_PORT POSTERN_PORT SINK_PORT \
    ACCEPT_TIMEOUT RELAY_TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
case $ONLY in
    both) servers=(postern postfix) ;;
    postern | postfix) servers=("$ONLY") ;;
    *) die "ONLY must be postern, postfix or both, got '$ONLY'" ;;
esac
want() { [[ " ${servers[*]} " == *" $1 "* ]]; }

# --- tools --------------------------------------------------------------------

export PATH=$PATH:/usr/sbin:/sbin
((EUID == 0)) || die "must run as root (private Postfix instance; smtp-sink drops to nobody)"
if ! command -v smtp-source >/dev/null || ! command -v smtp-sink >/dev/null ||
    ! command -v postfix >/dev/null; then
    say "installing postfix"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y postfix >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y postfix >/dev/null; } ||
        die "apt-get install postfix failed"
fi
for t in smtp-source smtp-sink postfix postconf; do
    command -v "$t" >/dev/null || die "$t not found after installing postfix"
done
command -v python3 >/dev/null || die "python3 is needed (bench/relay_sink_count.py)"
command -v ss >/dev/null || die "ss (iproute2) is needed to see when the sink listens"
if want postern && [[ ! -x $POSTERN_BIN ]]; then
    [[ $POSTERN_BIN == "$target/release/postern" ]] ||
        die "POSTERN_BIN=$POSTERN_BIN is not an executable"
    say "building postern (cargo build --release -p postern)"
    (cd "$repo" && cargo build --release -p postern) ||
        die "cannot build postern; run with --only postfix to bench Postfix alone"
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        port_in_use "$1" && return 0
        sleep 0.1
    done
    return 1
}
# Listening, found without connecting (a probe would count as a sink session).
listening() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

# --- cleanup ------------------------------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/postern-bench.XXXXXX")
chmod 755 "$work"
load_pid="" postern_pid="" postfix_conf="" sink_pid="" counter_pid=""

# stop_pid PID NAME SECONDS: SIGTERM, then SIGKILL after SECONDS.
stop_pid() {
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

stop_postfix() {
    [[ -n $postfix_conf ]] || return 0
    local conf=$postfix_conf pidfile master i
    postfix_conf=""
    pidfile=$(postconf -c "$conf" -h queue_directory)/pid/master.pid
    master=$(tr -d ' ' 2>/dev/null <"$pidfile" || true)
    timeout 30 postfix -c "$conf" stop >/dev/null 2>&1 || true
    if [[ -n $master ]]; then
        for ((i = 0; i < 100; i++)); do
            kill -0 "$master" 2>/dev/null || return 0
            sleep 0.1
        done
        say "postfix master $master did not stop; killing it"
        kill -KILL "$master" 2>/dev/null || true
    fi
}

stop_postern() {
    [[ -n $postern_pid ]] || return 0
    local pid=$postern_pid
    postern_pid=""
    stop_pid "$pid" postern 20
}

# Stops the sink; the counter then reads end of input, writes its "final"
# line and exits.
stop_sink() {
    local pid
    if [[ -n $sink_pid ]]; then
        pid=$sink_pid sink_pid=""
        stop_pid "$pid" smtp-sink 5
    fi
    if [[ -n $counter_pid ]]; then
        pid=$counter_pid counter_pid=""
        local i
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        stop_pid "$pid" "sink counter" 5
    fi
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM HUP
    [[ -n $load_pid ]] && kill -TERM "$load_pid" 2>/dev/null && wait "$load_pid" 2>/dev/null
    stop_postern
    stop_postfix
    stop_sink
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

# --- sink -----------------------------------------------------------------------

# start_sink DIR: a fresh smtp-sink on SINK_PORT, its counters going to
# DIR/sink.events through the counter.
start_sink() {
    local dir=$1 i
    listening "$SINK_PORT" && die "127.0.0.1:$SINK_PORT is in use (set SINK_PORT)"
    mkfifo "$dir/sink.fifo"
    : >"$dir/sink.events"
    python3 "$here/relay_sink_count.py" "$MESSAGES" "$dir/sink.events" <"$dir/sink.fifo" &
    counter_pid=$!
    # -u: smtp-sink refuses to keep root. 256 = listen backlog.
    # shellcheck disable=SC2086 # SINK_OPTS is a list of options
    smtp-sink -4 -c -u nobody $SINK_OPTS "127.0.0.1:$SINK_PORT" 256 \
        >"$dir/sink.fifo" 2>"$dir/sink.stderr" &
    sink_pid=$!
    for ((i = 0; i < 100; i++)); do
        listening "$SINK_PORT" && return 0
        kill -0 "$sink_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$dir/sink.stderr" >&2
    die "smtp-sink is not listening on 127.0.0.1:$SINK_PORT"
}

# event DIR KIND: the fields after KIND of the counter's KIND line, if any.
event() {
    local line
    while read -r line; do
        [[ $line == "$2 "* ]] && { echo "${line#"$2" }"; return 0; }
    done <"$1/sink.events"
    return 1
}

# --- load ---------------------------------------------------------------------

load_cmd=(smtp-source -d -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE"
    -M bench.localdomain -f bench@bench.localdomain -t rcpt@example.org)

# measure DIR PORT: runs smtp-source into PORT, then waits for the sink to
# have every message; sets t_start, t_accepted and t_all ("" on timeout).
measure() {
    local dir=$1 port=$2 rc=0 deadline all
    sync
    t_start=$EPOCHREALTIME
    timeout "$ACCEPT_TIMEOUT" "${load_cmd[@]}" "127.0.0.1:$port" >"$dir/smtp-source.log" 2>&1 &
    load_pid=$!
    wait "$load_pid" || rc=$?
    load_pid=""
    t_accepted=$EPOCHREALTIME
    if ((rc == 124)); then
        die "smtp-source did not finish within ACCEPT_TIMEOUT=${ACCEPT_TIMEOUT}s"
    elif ((rc != 0)); then
        tail -n 5 "$dir/smtp-source.log" >&2
        die "smtp-source failed (exit $rc)"
    fi
    deadline=$(awk -v s="$t_start" -v t="$RELAY_TIMEOUT" 'BEGIN { printf "%d", s + t }')
    t_all=""
    while ((${EPOCHREALTIME%.*} < deadline)); do
        if all=$(event "$dir" all); then
            t_all=${all%% *}
            return 0
        fi
        kill -0 "$counter_pid" 2>/dev/null || die "the sink counter exited early"
        sleep 0.05
    done
}

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
rate() { awk -v n="$MESSAGES" -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", n / (b - a) }'; }

# Results: "<server> <relay msgs/s or NA> <accept s> <sink sessions> <sink msgs>".
results=$work/results
: >"$results"

# record SERVER DIR: after the server and the sink stopped.
record() {
    local s=$1 dir=$2 relay accept final sess mesg first lag
    accept=$(secs "$t_start" "$t_accepted")
    final=$(event "$dir" final) || final="? ? ?"
    read -r sess _ mesg <<<"$final"
    if [[ -n $t_all ]]; then
        relay=$(rate "$t_start" "$t_all")
    else
        relay=NA
    fi
    echo "$s $relay $accept $sess $mesg" >>"$results"
    lag="no message reached the sink"
    if first=$(event "$dir" first); then
        lag="first message at the sink after $(secs "$t_start" "${first%% *}") s"
    fi
    if [[ $relay == NA ]]; then
        say "$s run $run/$REPEAT: TIMEOUT: the sink had $mesg of $MESSAGES after ${RELAY_TIMEOUT}s" \
            "(smtp-source $accept s; $lag; $sess sink sessions)"
    else
        say "$s run $run/$REPEAT: relayed $relay msgs/s (all at the sink after" \
            "$(secs "$t_start" "$t_all") s; smtp-source $accept s; $lag; $sess sink sessions)"
    fi
    [[ $mesg == "$MESSAGES" || $relay == NA ]] ||
        say "warning: $s: the sink received $mesg messages, $MESSAGES were sent"
}

# --- Postfix --------------------------------------------------------------------

postfix_run() {
    local dir=$work/postfix.$run conf queue
    conf=$dir/conf queue=$dir/queue
    mkdir -p "$conf" "$queue" "$dir/data"
    chmod 755 "$dir"
    chown postfix: "$dir/data"

    : >"$conf/main.cf"
    if [[ -f /usr/share/postfix/master.cf.dist ]]; then
        cp /usr/share/postfix/master.cf.dist "$conf/master.cf"
    else
        cp /etc/postfix/master.cf "$conf/master.cf"
    fi

    local settings=(
        "compatibility_level = 3.6"
        "queue_directory = $queue"
        "data_directory = $dir/data"
        "mail_owner = postfix"
        "setgid_group = postdrop"
        "maillog_file = $dir/maillog"
        "maillog_file_prefixes = $dir"
        "myhostname = postfix-bench.localdomain"
        "mydomain = localdomain"
        "inet_interfaces = 127.0.0.1"
        "inet_protocols = ipv4"
        "mynetworks = 127.0.0.0/8"
        "mydestination ="
        "local_recipient_maps ="
        "alias_maps ="
        "alias_database ="
        "relay_domains ="
        "relayhost = [127.0.0.1]:$SINK_PORT"
        "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination"
        "smtpd_tls_security_level = none"
        "smtp_tls_security_level = none"
        "biff = no"
    )
    local kv
    for kv in $POSTFIX_EXTRA; do settings+=("$kv"); done
    postconf -c "$conf" -e "${settings[@]}"
    # No chroot (the queue dir has no copies of /etc); smtpd only on our port.
    postconf -c "$conf" -F '*/*/chroot = n'
    postconf -c "$conf" -MX smtp/inet
    postconf -c "$conf" -M "127.0.0.1:$POSTFIX_PORT/inet = 127.0.0.1:$POSTFIX_PORT inet n - n - - smtpd"

    start_sink "$dir"
    port_in_use "$POSTFIX_PORT" && die "127.0.0.1:$POSTFIX_PORT is in use (set POSTFIX_PORT)"
    postfix_conf=$conf
    timeout 60 postfix -c "$conf" start >"$dir/start.log" 2>&1 ||
        { cat "$dir/start.log" "$dir/maillog" >&2 2>/dev/null; die "postfix did not start"; }
    local check
    check=$(timeout 60 postfix -c "$conf" check 2>&1) || true
    [[ -z $check ]] || say "postfix check: $check"
    wait_port "$POSTFIX_PORT" 30 ||
        { tail -n 20 "$dir/maillog" >&2; die "postfix smtpd is not listening on $POSTFIX_PORT"; }

    measure "$dir" "$POSTFIX_PORT"
    stop_postfix
    stop_sink
    record postfix "$dir"
    if grep -qE 'status=(deferred|bounced)' "$dir/maillog"; then
        say "postfix: some deliveries were deferred or bounced:"
        grep -E 'status=(deferred|bounced)' "$dir/maillog" | tail -n 3 >&2
    fi
    ((KEEP)) || rm -rf "$dir"
}

# --- Postern --------------------------------------------------------------------

postern_run() {
    local dir=$work/postern.$run
    mkdir -p "$dir"
    cat >"$dir/postern.toml" <<EOF
log = "$POSTERN_LOG"

[smtp]
listen = ["127.0.0.1:$POSTERN_PORT"]
submission_listen = []
submissions_listen = []

[pop3]
listen = []
pop3s_listen = []

[imap]
listen = []
imaps_listen = []

[http]
listen = []

[relay]
trusted_networks = ["127.0.0.0/8"]
smarthost = { host = "127.0.0.1:$SINK_PORT", tls = "none" }
$POSTERN_EXTRA
EOF

    start_sink "$dir"
    port_in_use "$POSTERN_PORT" && die "127.0.0.1:$POSTERN_PORT is in use (set POSTERN_PORT)"
    "$POSTERN_BIN" --data-dir "$dir/data" --config "$dir/postern.toml" up \
        >"$dir/stdout" 2>"$dir/stderr" &
    postern_pid=$!
    local i
    for ((i = 0; i < 300; i++)); do
        grep -q '^postern: ready' "$dir/stdout" 2>/dev/null && break
        kill -0 "$postern_pid" 2>/dev/null ||
            { cat "$dir/stdout" "$dir/stderr" >&2; postern_pid=""; die "postern up exited early"; }
        sleep 0.1
    done
    ((i < 300)) || { cat "$dir/stdout" "$dir/stderr" >&2; die "postern did not print 'postern: ready' within 30 s"; }

    measure "$dir" "$POSTERN_PORT"
    stop_postern
    stop_sink
    record postern "$dir"
    if [[ $POSTERN_LOG == warn && -s $dir/stderr ]]; then
        say "postern stderr (last lines):"
        tail -n 5 "$dir/stderr" >&2
    fi
    ((KEEP)) || rm -rf "$dir"
}

# --- main -----------------------------------------------------------------------

load1=$(cut -d' ' -f1 /proc/loadavg)
say "load: $SESSIONS sessions x $MESSAGES msgs x $SIZE bytes; repeat $REPEAT; load average now $load1"
say "work dir: $work"
for ((run = 1; run <= REPEAT; run++)); do
    for s in "${servers[@]}"; do
        "${s}_run"
    done
done

# median SERVER COLUMN: "NA" if any run lacks it.
median() {
    awk -v s="$1" -v c="$2" '
        $1 == s { if ($c == "NA" || $c == "?") bad = 1; else v[n++] = $c }
        END {
            if (bad || n == 0) { print "NA"; exit }
            for (i = 0; i < n; i++) for (j = i + 1; j < n; j++)
                if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
            m = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
            printf (c == 2) ? "%.1f" : (c == 3) ? "%.2f" : "%d", m
        }' "$results"
}
ratio() {
    if [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]]; then
        awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'
    else
        echo "-"
    fi
}
cell() { if want "$1"; then median "$1" "$2"; else echo "-"; fi; }

pr=$(cell postern 2) pa=$(cell postern 3) ps=$(cell postern 4)
fr=$(cell postfix 2) fa=$(cell postfix 3) fs=$(cell postfix 4)
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
fstype=$(df --output=fstype "$work" | tail -n 1)
all_runs=$(awk '{ printf "%s%s %s", sep, $1, $2; sep = ", " }' "$results")

echo
echo "load: $SESSIONS sessions x $MESSAGES msgs x $SIZE bytes (smtp-source -d) -> server -> smtp-sink"
((REPEAT > 1)) && echo "median of $REPEAT runs per server"
printf '%-18s %10s %10s %8s\n' "" postern postfix ratio
printf '%-18s %10s %10s %8s\n' "relay msgs/s" "${pr/NA/timeout}" "${fr/NA/timeout}" "$(ratio "$pr" "$fr")"
printf '%-18s %10s %10s %8s\n' "accept s" "$pa" "$fa" "$(ratio "$pa" "$fa")"
printf '%-18s %10s %10s %8s\n' "sink sessions" "$ps" "$fs" "$(ratio "$ps" "$fs")"
echo "(ratio = postern / postfix; relay = all $MESSAGES at the sink, from the start of smtp-source,"
echo " target ratio >= 2; accept = smtp-source wall time, lower is faster; sink sessions = SMTP"
echo " sessions the server opened to the sink, lower = more messages per session)"
echo "all runs (relay msgs/s): $all_runs"
echo
echo "machine: $(nproc) cpus ($cpu), Linux $(uname -r), load average at start $load1, $fstype temp dir"
if want postfix; then
    echo "postfix: $(postconf -h mail_version) (private instance; changed from defaults: relayhost," \
        "mynetworks, inet_interfaces, mydestination/relay_domains/local maps empty," \
        "smtp(d)_tls_security_level = none, no chroot, maillog_file${POSTFIX_EXTRA:+; extra: $POSTFIX_EXTRA})"
fi
if want postern; then
    echo "postern: $("$POSTERN_BIN" --version 2>/dev/null || echo "version unknown") (postern up;" \
        "changed from defaults: trusted_networks, smarthost tls none, listeners${POSTERN_EXTRA:+; extra: ${POSTERN_EXTRA//$'\n'/ }})"
fi
echo "load generator and sink: smtp-source, smtp-sink${SINK_OPTS:+ $SINK_OPTS} from postfix $(postconf -h mail_version)"
if grep -q '^[a-z]* NA ' "$results"; then
    say "some runs timed out (RELAY_TIMEOUT=${RELAY_TIMEOUT}s)"
    exit 2
fi
