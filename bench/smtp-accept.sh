#!/usr/bin/env bash
# SMTP accept and local-delivery throughput: Postern vs a private Postfix.
#
# A benchmark, run by hand; never in CI. Needs root (it installs postfix and
# runs a throwaway Postfix instance). Everything binds 127.0.0.1 only, and the
# whole run is bounded: every wait has a time limit.
#
#   bench/smtp-accept.sh [--sessions N] [--messages N] [--size-kb N]
#                        [--repeat N] [--only postern|pg|postfix|both|all]
#                        [--connect-each] [--settle SECS] [--keep]
#
# Settings (flags win over environment variables of the same meaning):
#   SESSIONS=20        parallel SMTP sessions (smtp-source -s)
#   MESSAGES=5000      messages in total, over all sessions (smtp-source -m)
#   SIZE_KB=4          message body size in KiB (smtp-source -l)
#   REPEAT=1           runs per server; the table shows the median
#   CONNECT_EACH=0     1: a new connection for every message (as many apps
#                      send: connect, EHLO, one message, QUIT); 0: each
#                      session sends its messages over one connection
#                      (smtp-source -d)
#   ONLY=both          postern | pg | postfix | both (postern, postfix) | all
#                      (pg: Postern with its store in PostgreSQL, a private
#                      cluster this script starts; a new database per run)
#   SETTLE=0           seconds to wait before each Postfix run (see below)
#   POSTFIX_PORT=2625  POSTERN_PORT=2725   SMTP ports on 127.0.0.1
#   ACCEPT_TIMEOUT=600     seconds smtp-source may take
#   DELIVERY_TIMEOUT=600   seconds from start until all mail is in the mailbox
#   POLL=0.2           seconds between mailbox counts
#   POSTERN_BIN=target/release/postern (built with cargo if missing)
#   KEEP=0             1 keeps the temp dir (configs, logs, mailboxes); it is
#                      also kept when the script fails, for the logs
#   TMPDIR             where the temp dir goes (must be a real disk: both
#                      servers fsync before replying 250)
#
# Figures: "accepted msgs/s" = MESSAGES / wall time of smtp-source;
# "delivered msgs/s" = MESSAGES / time from the start of smtp-source until
# every message is in the recipient's mailbox. "server CPU us/msg" = user +
# system CPU time of the server (Postern: its one process; Postfix: the
# master, its live children and the children it has reaped) from the start
# of smtp-source until the end of smtp-source ("accepted") and until all
# mail is in the mailbox ("delivered"), per message: on a shared machine a
# steadier figure than the rates. Each run starts from a fresh server (empty
# queue and mailbox); with REPEAT>1 the servers alternate.
#
# The Postfix instance keeps its durability defaults (queue files fsynced
# before 250, Maildir files fsynced before delivery is final) and its flow
# control (in_flow_delay); POSTFIX_EXTRA="name=value ..." adds main.cf
# settings for experiments, and POSTERN_EXTRA="TOML text" is appended to
# Postern's config (e.g. POSTERN_EXTRA=$'[queue]\nconcurrency = 64').
#
# On ext4 WITHOUT a journal (some VMs' disks; the script says so when the
# temp dir is on one), ext4 avoids reusing an inode for 60 s after its
# deletion (360 s while its inode table block is dirty) and steps over each
# such inode whenever it creates a file. Postfix creates two files per
# message and deletes one; Postern keeps one database file. On such a disk
# Postfix's rate swung 326-1,165 msgs/s in one day's runs and tended to
# fall from run to run (one session: 872, 585, 488, 379, 340), while
# Postern's did not. --settle SECS waits before each Postfix run, for
# experiments: 360 s brought 20-session runs back (922 msgs/s against 514
# without), one-session runs not (394, 326, 424), so the recently-deleted
# rule is not the whole story. Compare ratios from one run of the script.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

SESSIONS=${SESSIONS:-20}
MESSAGES=${MESSAGES:-5000}
SIZE_KB=${SIZE_KB:-4}
REPEAT=${REPEAT:-1}
ONLY=${ONLY:-both}
POSTFIX_PORT=${POSTFIX_PORT:-2625}
POSTERN_PORT=${POSTERN_PORT:-2725}
ACCEPT_TIMEOUT=${ACCEPT_TIMEOUT:-600}
DELIVERY_TIMEOUT=${DELIVERY_TIMEOUT:-600}
POLL=${POLL:-0.2}
POSTERN_BIN=${POSTERN_BIN:-$repo/target/release/postern}
POSTFIX_EXTRA=${POSTFIX_EXTRA:-}
KEEP=${KEEP:-0}
CONNECT_EACH=${CONNECT_EACH:-0}
SETTLE=${SETTLE:-0}
# The daemons read every POSTERN_* variable as configuration and refuse
# unknown ones: the settings above are this script's, not theirs.
for v in $(compgen -e POSTERN_); do export -n "$v"; done

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while (($#)); do
    case $1 in
        -s | --sessions) SESSIONS=$2; shift 2 ;;
        -m | --messages) MESSAGES=$2; shift 2 ;;
        -k | --size-kb) SIZE_KB=$2; shift 2 ;;
        -r | --repeat) REPEAT=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --connect-each) CONNECT_EACH=1; shift ;;
        --settle) SETTLE=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "smtp-accept: unknown argument: $1 (try --help)" >&2; exit 64 ;;
    esac
done

die() { echo "smtp-accept: $*" >&2; exit 1; }
say() { echo "smtp-accept: $*" >&2; }

for v in SESSIONS MESSAGES SIZE_KB REPEAT POSTFIX_PORT POSTERN_PORT \
    ACCEPT_TIMEOUT DELIVERY_TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
[[ $CONNECT_EACH == [01] ]] || die "CONNECT_EACH must be 0 or 1, got '$CONNECT_EACH'"
[[ $SETTLE =~ ^[0-9]+$ ]] || die "SETTLE must be a number of seconds, got '$SETTLE'"
case $ONLY in
    both) servers=(postern postfix) ;;
    all) servers=(postern pg postfix) ;;
    postern | postfix | pg) servers=("$ONLY") ;;
    *) die "ONLY must be postern, pg, postfix, both or all, got '$ONLY'" ;;
esac
want() { [[ " ${servers[*]} " == *" $1 "* ]]; }

# --- tools --------------------------------------------------------------------

export PATH=$PATH:/usr/sbin:/sbin
if ! command -v smtp-source >/dev/null || ! command -v postfix >/dev/null; then
    ((EUID == 0)) || die "postfix is not installed and I am not root to install it"
    say "installing postfix"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y postfix >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y postfix >/dev/null; } ||
        die "apt-get install postfix failed"
fi
command -v smtp-source >/dev/null || die "smtp-source not found after installing postfix"
command -v python3 >/dev/null || die "python3 is needed (bench/smtp_accept_wait.py)"
if want postfix; then
    ((EUID == 0)) || die "the private Postfix instance must be started as root"
fi
if { want postern || want pg; } && [[ ! -x $POSTERN_BIN ]]; then
    [[ $POSTERN_BIN == "$repo/target/release/postern" ]] ||
        die "POSTERN_BIN=$POSTERN_BIN is not an executable"
    say "building postern (cargo build --release -p postern)"
    (cd "$repo" && cargo build --release -p postern) ||
        die "cannot build postern; run with ONLY=postfix to bench Postfix alone"
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

# --- cleanup ------------------------------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/postern-bench.XXXXXX")
chmod 755 "$work" # the Postfix virtual agent delivers as 'nobody'
load_pid="" postern_pid="" postfix_conf="" store_env=()
# shellcheck source=bench/lib/pg-cluster.sh
source "$here/lib/pg-cluster.sh"

stop_postfix() {
    [[ -n $postfix_conf ]] || return 0
    local conf=$postfix_conf pidfile master i
    postfix_conf=""
    pidfile=$(postconf -c "$conf" -h queue_directory)/pid/master.pid
    master=$(tr -d ' ' 2>/dev/null <"$pidfile" || true)
    postfix -c "$conf" stop >/dev/null 2>&1 || true
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
    local pid=$postern_pid i
    postern_pid=""
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    say "postern $pid did not stop within 20 s of SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# A private PostgreSQL cluster for ONLY=pg/all, started at its first run.
start_pg() {
    [[ -n $pg_data ]] && return 0
    pg_cluster_start "$work/pg" || die "no private PostgreSQL cluster"
    say "PostgreSQL $(pg_cluster_version) on 127.0.0.1:$pg_port (defaults: synchronous_commit on, fsync on)"
}

stop_pg() { pg_cluster_stop; }

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM HUP
    [[ -n $load_pid ]] && kill -TERM "$load_pid" 2>/dev/null && wait "$load_pid" 2>/dev/null
    stop_postern
    stop_postfix
    stop_pg
    if ((KEEP)) || ((rc == 1)); then
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

# --- load ---------------------------------------------------------------------

size_bytes=$((SIZE_KB * 1024))
load_cmd=(smtp-source -s "$SESSIONS" -m "$MESSAGES" -l "$size_bytes"
    -M bench.localdomain -f bench@localhost -t bench@localhost)
if [[ $CONNECT_EACH == 1 ]]; then
    connections="a connection per message"
else
    load_cmd+=(-d)
    connections="smtp-source -d, persistent sessions"
fi

# The server's CPU time so far, in clock ticks: set cpu_of to a command
# that prints it (postern_cpu or postfix_cpu).
clk_tck=$(getconf CLK_TCK)
proc_ticks() { # PID: own utime+stime, and (with "reaped") the reaped children's
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    # Fields after the ")" that ends the command name: 12 utime 13 stime
    # 14 cutime 15 cstime (counted from the state, field 1).
    awk -v want="${2:-}" '{ t = $12 + $13; if (want == "reaped") t += $14 + $15; print t }' <<<"${stat##*) }"
}
postern_cpu() { proc_ticks "$postern_pid"; }
postfix_cpu() {
    local master total p ppid rest
    master=$(tr -d ' ' 2>/dev/null <"$(postconf -c "$postfix_conf" -h queue_directory)/pid/master.pid" || true)
    [[ -n $master ]] || { echo 0; return; }
    total=$(proc_ticks "$master" reaped)
    for p in /proc/[0-9]*; do
        rest=$(cat "$p/stat" 2>/dev/null) || continue
        rest=${rest##*) }
        read -r _ ppid _ <<<"$rest"
        [[ $ppid == "$master" ]] && total=$((total + $(proc_ticks "${p#/proc/}")))
    done
    echo "$total"
}
cpu_of=""

# run_load PORT LOGFILE: sets t_start and t_accepted (epoch seconds), and
# cpu_start and cpu_accepted (ticks of $cpu_of).
run_load() {
    sync
    cpu_start=$($cpu_of)
    t_start=$EPOCHREALTIME
    timeout "$ACCEPT_TIMEOUT" "${load_cmd[@]}" "127.0.0.1:$1" >"$2" 2>&1 &
    load_pid=$!
    local rc=0
    wait "$load_pid" || rc=$?
    load_pid=""
    t_accepted=$EPOCHREALTIME
    cpu_accepted=$($cpu_of)
    if ((rc == 124)); then
        die "smtp-source did not finish within ACCEPT_TIMEOUT=${ACCEPT_TIMEOUT}s"
    elif ((rc != 0)); then
        tail -n 5 "$2" >&2
        die "smtp-source failed (exit $rc)"
    fi
}

# wait_delivered ARGS...: runs the helper; sets t_delivered ("" on timeout).
wait_delivered() {
    local out
    out=$(env "${store_env[@]}" python3 "$here/smtp_accept_wait.py" "$@") || true
    case $out in
        timeout*)
            say "delivery timed out after ${DELIVERY_TIMEOUT}s: ${out#timeout } of $MESSAGES in the mailbox"
            t_delivered="" cpu_delivered="" ;;
        [0-9]*)
            t_delivered=${out%% *}
            cpu_delivered=$($cpu_of)
            local got=${out#* }
            ((got == MESSAGES)) || say "warning: $got messages in the mailbox, expected $MESSAGES" ;;
        *) die "delivery poll failed" ;;
    esac
}

rate() { awk -v n="$MESSAGES" -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", n / (b - a) }'; }

# Microseconds of server CPU per message between two tick counts.
cpu_us() { awk -v n="$MESSAGES" -v a="$1" -v b="$2" -v hz="$clk_tck" 'BEGIN { printf "%.0f", (b - a) * 1e6 / hz / n }'; }

# Results: "<server> <accepted/s> <delivered/s or NA> <CPU us/msg at
# accepted> <CPU us/msg at delivered or NA>" per run.
results=$work/results
: >"$results"

record() { # server
    local acc dlv
    acc=$(rate "$t_start" "$t_accepted")
    if [[ -n $t_delivered ]]; then
        # Delivery counted at or before the end of smtp-source: at least that.
        if awk -v a="$t_delivered" -v b="$t_accepted" 'BEGIN { exit !(a < b) }'; then
            t_delivered=$t_accepted
        fi
        dlv=$(rate "$t_start" "$t_delivered")
    else
        dlv=NA
    fi
    local cpu_acc cpu_dlv=NA
    cpu_acc=$(cpu_us "$cpu_start" "$cpu_accepted")
    [[ -n $cpu_delivered ]] && cpu_dlv=$(cpu_us "$cpu_start" "$cpu_delivered")
    echo "$1 $acc $dlv $cpu_acc $cpu_dlv" >>"$results"
    local d="delivered $dlv msgs/s"
    [[ $dlv == NA ]] && d="delivery timed out"
    say "$1 run $run/$REPEAT: accepted $acc msgs/s, $d" \
        "(smtp-source $(awk -v a="$t_start" -v b="$t_accepted" 'BEGIN { printf "%.2f", b - a }') s);" \
        "server CPU $cpu_acc us/msg to accepted, $cpu_dlv us/msg to delivered"
}

# --- Postfix --------------------------------------------------------------------

postfix_run() {
    local dir=$work/postfix.$run conf queue vmail owner
    if ((SETTLE > 0)); then
        say "waiting ${SETTLE}s before postfix run $run (--settle)"
        sleep "$SETTLE"
    fi
    conf=$dir/conf queue=$dir/queue vmail=$dir/vmail
    mkdir -p "$conf" "$queue" "$dir/data" "$vmail/bench"
    chmod 755 "$dir"
    owner=$(id -u nobody):$(id -g nobody)
    chown -R "$owner" "$vmail"
    chown postfix: "$dir/data"

    : >"$conf/main.cf"
    if [[ -f /usr/share/postfix/master.cf.dist ]]; then
        cp /usr/share/postfix/master.cf.dist "$conf/master.cf"
    else
        cp /etc/postfix/master.cf "$conf/master.cf"
    fi
    printf 'bench@localhost bench/\n' >"$conf/vmailbox"

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
        "relayhost ="
        "relay_domains ="
        "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination"
        "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination"
        "smtpd_tls_security_level = none"
        "smtpd_client_connection_count_limit = 100"
        "default_process_limit = 100"
        "message_size_limit = 52428800"
        "virtual_mailbox_limit = 0"
        "virtual_mailbox_domains = localhost"
        "virtual_mailbox_base = $vmail"
        "virtual_mailbox_maps = texthash:$conf/vmailbox"
        "virtual_uid_maps = static:${owner%:*}"
        "virtual_gid_maps = static:${owner#*:}"
        "biff = no"
    )
    local kv
    for kv in $POSTFIX_EXTRA; do settings+=("$kv"); done
    postconf -c "$conf" -e "${settings[@]}"
    # No chroot (the queue dir has no copies of /etc); smtpd only on our port.
    postconf -c "$conf" -F '*/*/chroot = n'
    postconf -c "$conf" -MX smtp/inet
    postconf -c "$conf" -M "127.0.0.1:$POSTFIX_PORT/inet = 127.0.0.1:$POSTFIX_PORT inet n - n - - smtpd"

    port_in_use "$POSTFIX_PORT" && die "127.0.0.1:$POSTFIX_PORT is in use (set POSTFIX_PORT)"
    postfix_conf=$conf
    postfix -c "$conf" start >"$dir/start.log" 2>&1 ||
        { cat "$dir/start.log" "$dir/maillog" >&2 2>/dev/null; die "postfix did not start"; }
    local check
    check=$(postfix -c "$conf" check 2>&1) || true
    [[ -z $check ]] || say "postfix check: $check"
    wait_port "$POSTFIX_PORT" 30 ||
        { tail -n 20 "$dir/maillog" >&2; die "postfix smtpd is not listening on $POSTFIX_PORT"; }

    cpu_of=postfix_cpu
    run_load "$POSTFIX_PORT" "$dir/smtp-source.log"
    wait_delivered maildir "$vmail/bench" "$MESSAGES" \
        "$(awk -v t="$DELIVERY_TIMEOUT" -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN { print t - (b - a) }')" "$POLL"
    record postfix
    stop_postfix
    ((KEEP)) || rm -rf "$dir"
}

# --- Postern --------------------------------------------------------------------

pg_run() { postern_run pg; }

postern_run() { # [pg]
    local label=${1:-postern}
    local dir=$work/$label.$run
    mkdir -p "$dir"
    # The store: SQLite in the data dir, or a new PostgreSQL database.
    local store_env=()
    if [[ $label == pg ]]; then
        start_pg
        pg_cluster_createdb "bench_$run" || die "cannot create a database"
        store_env=(POSTERN_STORE_BACKEND=postgres "POSTERN_STORE_URL=$(pg_cluster_url "bench_$run")")
    fi
    cat >"$dir/postern.toml" <<EOF
log = "warn"

[smtp]
listen = ["127.0.0.1:$POSTERN_PORT"]
submission_listen = []
submissions_listen = []
${POSTERN_EXTRA:-}
EOF
    printf 'bench-password\n' |
        env "${store_env[@]}" "$POSTERN_BIN" --data-dir "$dir/data" user add bench@localhost --password-stdin \
            >"$dir/user-add.log" 2>&1 ||
        { cat "$dir/user-add.log" >&2; die "postern user add failed"; }

    port_in_use "$POSTERN_PORT" && die "127.0.0.1:$POSTERN_PORT is in use (set POSTERN_PORT)"
    env "${store_env[@]}" "$POSTERN_BIN" --data-dir "$dir/data" --config "$dir/postern.toml" up \
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

    cpu_of=postern_cpu
    run_load "$POSTERN_PORT" "$dir/smtp-source.log"
    wait_delivered postern "$POSTERN_BIN" "$dir/data" bench@localhost "$MESSAGES" \
        "$(awk -v t="$DELIVERY_TIMEOUT" -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN { print t - (b - a) }')" "$POLL"
    record "$label"
    stop_postern
    [[ -s $dir/stderr ]] && { say "postern stderr (last lines):"; tail -n 5 "$dir/stderr" >&2; }
    ((KEEP)) || rm -rf "$dir"
}

# --- main -----------------------------------------------------------------------

# Whether DIR is on ext4 without a journal (see the header).
ext4_without_journal() {
    local dev
    dev=$(findmnt -no SOURCE -T "$1" 2>/dev/null) || return 1
    [[ $(cat "/sys/fs/ext4/${dev##*/}/journal_task" 2>/dev/null) == "<none>" ]]
}

load1=$(cut -d' ' -f1 /proc/loadavg)
say "load: $SESSIONS sessions x $MESSAGES msgs x $SIZE_KB KiB; repeat $REPEAT; load average now $load1"
say "work dir: $work"
for ((run = 1; run <= REPEAT; run++)); do
    for s in "${servers[@]}"; do
        "${s}_run"
    done
done

# median SERVER COLUMN (2 accepted, 3 delivered): "NA" if any run lacks it.
median() {
    awk -v s="$1" -v c="$2" '
        $1 == s { if ($c == "NA") bad = 1; else v[n++] = $c }
        END {
            if (bad || n == 0) { print "NA"; exit }
            for (i = 0; i < n; i++) for (j = i + 1; j < n; j++)
                if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
            printf "%.1f", (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
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

pa=$(cell postern 2) pd=$(cell postern 3) fa=$(cell postfix 2) fd=$(cell postfix 3)
pca=$(cell postern 4) pcd=$(cell postern 5) fca=$(cell postfix 4) fcd=$(cell postfix 5)
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
fs=$(df --output=fstype "$work" | tail -n 1)

echo
echo "load: $SESSIONS sessions x $MESSAGES msgs x $SIZE_KB KiB ($connections)"
((REPEAT > 1)) && echo "median of $REPEAT runs per server"
if want pg; then
    ga=$(cell pg 2) gd=$(cell pg 3) gca=$(cell pg 4) gcd=$(cell pg 5)
    echo "Postern with its store in PostgreSQL (pg), same runs:"
    printf '%-18s %10s %10s %10s %10s\n' "" pg postern postfix "pg/postfix"
    printf '%-18s %10s %10s %10s %10s\n' "accepted msgs/s" "${ga/NA/timeout}" "${pa/NA/timeout}" "${fa/NA/timeout}" "$(ratio "$ga" "$fa")"
    printf '%-18s %10s %10s %10s %10s\n' "delivered msgs/s" "${gd/NA/timeout}" "${pd/NA/timeout}" "${fd/NA/timeout}" "$(ratio "$gd" "$fd")"
    printf '%-18s %10s %10s %10s %10s\n' "CPU us/msg accept" "$gca" "$pca" "$fca" "$(ratio "$fca" "$gca")"
    echo "(pg CPU is Postern's alone; the PostgreSQL server's is not counted)"
    echo
fi
printf '%-18s %10s %10s %8s\n' "" postern postfix ratio
printf '%-18s %10s %10s %8s\n' "accepted msgs/s" "${pa/NA/timeout}" "${fa/NA/timeout}" "$(ratio "$pa" "$fa")"
printf '%-18s %10s %10s %8s\n' "delivered msgs/s" "${pd/NA/timeout}" "${fd/NA/timeout}" "$(ratio "$pd" "$fd")"
printf '%-18s %10s %10s %8s\n' "CPU us/msg accept" "$pca" "$fca" "$(ratio "$fca" "$pca")"
printf '%-18s %10s %10s %8s\n' "CPU us/msg deliv." "${pcd/NA/timeout}" "${fcd/NA/timeout}" "$(ratio "$fcd" "$pcd")"
echo "(ratio = postern / postfix for rates, postfix / postern for CPU: above 1 is"
echo " Postern ahead; delivered = all $MESSAGES in the mailbox, polled every ${POLL}s;"
echo " CPU = the server's user+system time from the start of smtp-source)"
echo
echo "machine: $(nproc) cpus ($cpu), Linux $(uname -r), load average at start $load1, $fs temp dir"
if want postfix; then
    echo "postfix: $(postconf -h mail_version) (private instance, Maildir via virtual(8))"
fi
echo "load generator: smtp-source from postfix $(postconf -h mail_version)"
if want postfix && ext4_without_journal "$work"; then
    echo "note: the temp dir is on ext4 without a journal, where Postfix's rate"
    echo " swings from run to run (see the header); waited ${SETTLE}s before each"
    echo " Postfix run (--settle)"
fi
if want postern; then
    echo "postern: $("$POSTERN_BIN" --version 2>/dev/null || echo "version unknown")"
fi
if grep -q ' NA$' "$results"; then
    say "some deliveries timed out (DELIVERY_TIMEOUT=${DELIVERY_TIMEOUT}s)"
    exit 2
fi
