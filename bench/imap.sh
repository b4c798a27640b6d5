#!/usr/bin/env bash
# IMAP: Postern's imapd vs a private Dovecot.
#
# A benchmark, run by hand; never in CI. Needs root (it installs
# dovecot-imapd and runs a throwaway Dovecot instance). Everything binds
# 127.0.0.1 only, and the whole run is bounded: every wait has a time limit.
#
#   bench/imap.sh [--messages N] [--repeat N] [--idle-conns N]
#                 [--only postern|dovecot|both] [--extensions] [--keep]
#
# Settings (flags win over environment variables of the same meaning):
#   MESSAGES=50000     messages APPENDed to the one INBOX (1-2 KiB each)
#   BATCH=100          APPENDs written at once (LITERAL+) before their replies
#                      are read
#   REPEAT=3           timed runs of the mailbox operations per server; the
#                      table shows the median
#   WARMUP=1           untimed runs of the operations before timing
#   IDLE_CONNS=1000    sessions held in IDLE for the memory figure; 0 = skip
#   IDLE_WORKERS=16    client threads opening them (logins run in parallel)
#   ONLY=both          postern | dovecot | both
#   EXTENSIONS=0       1 (--extensions) also measures, REPEAT times, what a
#                      syncing client uses: a QRESYNC resync after CHANGES
#                      flag changes against SELECT + UID FETCH 1:* (FLAGS),
#                      UID SORT (DATE), UID THREAD REFERENCES, and a FETCH
#                      of FETCH_MIB MiB of messages with and without
#                      COMPRESS=DEFLATE (bench/imap_load.py ext)
#   CHANGES=100  FETCH_MIB=20
#   DOVECOT_PORT=11143 Dovecot IMAP port on 127.0.0.1
#   POSTERN_PORT=11243 Postern IMAP port on 127.0.0.1
#   APPEND_TIMEOUT=3600 seconds the APPEND of all messages may take
#   OPS_TIMEOUT=600    seconds one run of the mailbox operations may take
#   IDLE_TIMEOUT=1200  seconds to open all IDLE sessions
#   POSTERN_BIN, IMAPD_BIN  default $CARGO_TARGET_DIR/release/{postern,imapd}
#                      (target/ when CARGO_TARGET_DIR is unset); built with
#                      cargo if missing
#   AT_END=""          a command run as `$AT_END PID SERVER` right after the
#                      RSS after the run is read, while the server is still
#                      up (e.g. a script that saves /proc/PID/smaps_rollup)
#   KEEP=0             1 keeps the temp dir (configs, logs, mailboxes); it is
#                      also kept when the script fails, for the logs
#   TMPDIR             where the temp dir goes
#
# What is measured, on one account per server:
#   APPEND      MESSAGES messages into INBOX over one connection, LITERAL+
#               literals, BATCH commands in flight; msgs/s. Done once per
#               server (it fills the mailbox for the rest), not repeated.
#   operations  each run is a fresh connection and LOGIN (not timed), then
#               SELECT INBOX; UID FETCH 1:* (FLAGS); UID SEARCH SUBJECT <w>
#               with a word in ~1% of the subjects; UID FETCH of the last 100
#               UIDs (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (...)]),
#               the header set Thunderbird asks for. Milliseconds from
#               writing the command to reading its tagged reply.
#   memory      one session logged in with INBOX selected, then the server's
#               RSS; then IDLE_CONNS more sessions LOGIN, SELECT INBOX, IDLE
#               (each up to the "+"), then the RSS again; (after - before) /
#               IDLE_CONNS = KiB per session. RSS is VmRSS from /proc, summed
#               over the process and all its descendants: for Postern the one
#               imapd process, for Dovecot the master and every process under
#               it (one `imap` process per session, Dovecot's default). Done
#               once per server.
#   RSS after   the server's RSS (VmRSS, summed as above) once everything
#               above is done: what the run left held (caches and all).
# The client (bench/imap_load.py) is raw sockets, the same for both
# servers; it shares the CPUs with the server.
#
# Logins cost the same on both sides: Dovecot's user gets the very argon2id
# hash Postern stores ({ARGON2ID} PHC string), not a cleartext password.
# Both servers start once and stay up for all runs; with REPEAT>1 they
# alternate. Dovecot stores a Maildir with its default fsync settings.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}

MESSAGES=${MESSAGES:-50000}
BATCH=${BATCH:-100}
REPEAT=${REPEAT:-3}
WARMUP=${WARMUP:-1}
IDLE_CONNS=${IDLE_CONNS:-1000}
IDLE_WORKERS=${IDLE_WORKERS:-16}
ONLY=${ONLY:-both}
EXTENSIONS=${EXTENSIONS:-0}
CHANGES=${CHANGES:-100}
FETCH_MIB=${FETCH_MIB:-20}
DOVECOT_PORT=${DOVECOT_PORT:-11143}
POSTERN_PORT=${POSTERN_PORT:-11243}
APPEND_TIMEOUT=${APPEND_TIMEOUT:-3600}
OPS_TIMEOUT=${OPS_TIMEOUT:-600}
IDLE_TIMEOUT=${IDLE_TIMEOUT:-1200}
POSTERN_BIN=${POSTERN_BIN:-$target/release/postern}
IMAPD_BIN=${IMAPD_BIN:-$target/release/imapd}
KEEP=${KEEP:-0}
AT_END=${AT_END:-}
# The daemons read every POSTERN_* variable as configuration and refuse
# unknown ones: the settings above are this script's, not theirs.
for v in $(compgen -e POSTERN_); do export -n "$v"; done

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while (($#)); do
    case $1 in
        -m | --messages) MESSAGES=$2; shift 2 ;;
        -r | --repeat) REPEAT=$2; shift 2 ;;
        -i | --idle-conns) IDLE_CONNS=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --extensions) EXTENSIONS=1; shift ;;
        --keep) KEEP=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "imap: unknown argument: $1 (try --help)" >&2; exit 64 ;;
    esac
done

die() { echo "imap: $*" >&2; exit 1; }
say() { echo "imap: $*" >&2; }

for v in MESSAGES BATCH REPEAT IDLE_WORKERS DOVECOT_PORT POSTERN_PORT \
    APPEND_TIMEOUT OPS_TIMEOUT IDLE_TIMEOUT CHANGES FETCH_MIB; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
for v in WARMUP IDLE_CONNS EXTENSIONS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number, got '${!v}'"
done
((MESSAGES >= 100)) || die "MESSAGES must be at least 100 (the header fetch takes the last 100)"
case $ONLY in
    both) servers=(postern dovecot) ;;
    postern | dovecot) servers=("$ONLY") ;;
    *) die "ONLY must be postern, dovecot or both, got '$ONLY'" ;;
esac
want() { [[ " ${servers[*]} " == *" $1 "* ]]; }

# --- tools --------------------------------------------------------------------

export PATH=$PATH:/usr/sbin:/sbin
command -v python3 >/dev/null || die "python3 is needed (bench/imap_load.py)"
if want dovecot; then
    ((EUID == 0)) || die "the private Dovecot instance must be started as root"
    if ! command -v dovecot >/dev/null || [[ ! -x /usr/lib/dovecot/imap ]]; then
        say "installing dovecot-imapd"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y dovecot-imapd >/dev/null ||
            { apt-get update >/dev/null && apt-get install -y dovecot-imapd >/dev/null; } ||
            die "apt-get install dovecot-imapd failed"
    fi
    command -v dovecot >/dev/null || die "dovecot not found after installing dovecot-imapd"
    if ! id dovecot >/dev/null 2>&1 || ! id dovenull >/dev/null 2>&1; then
        die "the users dovecot and dovenull are missing (the package creates them)"
    fi
fi
# postern is needed either way: it makes Dovecot's password hash too.
if [[ ! -x $POSTERN_BIN || (! -x $IMAPD_BIN && " ${servers[*]} " == *" postern "*) ]]; then
    [[ $POSTERN_BIN == "$target/release/postern" && $IMAPD_BIN == "$target/release/imapd" ]] ||
        die "POSTERN_BIN=$POSTERN_BIN or IMAPD_BIN=$IMAPD_BIN is not an executable"
    say "building postern and imapd (cargo build --release -p postern -p imapd)"
    (cd "$repo" && cargo build --release -p postern -p imapd) ||
        die "cannot build postern and imapd"
fi

# Every IDLE session is a socket in the server and in the client.
need_fds=$(((IDLE_CONNS + 200) * 2 + 256))
if (($(ulimit -n) < need_fds)); then
    ulimit -n "$need_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi
(($(ulimit -n) >= need_fds)) ||
    die "ulimit -n is $(ulimit -n), $need_fds are needed for $IDLE_CONNS IDLE sessions"

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
chmod 755 "$work" # Dovecot's login and mail processes run as other users
job_pid="" postern_pid="" dovecot_conf="" dovecot_master=""

stop_dovecot() {
    [[ -n $dovecot_conf ]] || return 0
    local conf=$dovecot_conf master=$dovecot_master i
    dovecot_conf="" dovecot_master=""
    [[ -n $master ]] || master=$(cat "$work/dovecot/run/master.pid" 2>/dev/null || true)
    doveadm -c "$conf" stop >/dev/null 2>&1 || [[ -z $master ]] || kill -TERM "$master" 2>/dev/null || true
    if [[ -n $master ]]; then
        for ((i = 0; i < 300; i++)); do
            kill -0 "$master" 2>/dev/null || return 0
            sleep 0.1
        done
        say "dovecot master $master did not stop; killing it"
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
    say "imapd $pid did not stop within 20 s of SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM HUP
    [[ -n $job_pid ]] && kill -TERM "$job_pid" 2>/dev/null && wait "$job_pid" 2>/dev/null
    stop_postern
    stop_dovecot
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

# run_job TIMEOUT OUTFILE CMD...: runs CMD in the background (so a signal can
# stop it via the trap) with a time limit; stdout to OUTFILE, stderr to ours.
run_job() {
    local limit=$1 out=$2 rc=0
    shift 2
    timeout "$limit" "$@" >"$out" &
    job_pid=$!
    wait "$job_pid" || rc=$?
    job_pid=""
    return "$rc"
}

user=bench@localhost
password=bench-password
# A subject word in about 1% of the messages (one of 100, picked at random
# per message from a fixed seed; the same messages go to both servers).
word=$(python3 "$here/imap_load.py" words | sed -n 1p)

# --- Dovecot --------------------------------------------------------------------

# Both servers check the same argon2id hash at login, so logins cost the
# same: Postern makes it (`postern user add` in a scratch data dir) and
# Dovecot gets that PHC string as its {ARGON2ID} password (libsodium
# verifies with the parameters the string carries).
password_hash() {
    local scratch=$work/hash
    [[ -s $scratch/phc ]] || {
        mkdir -p "$scratch"
        printf '%s\n' "$password" |
            "$POSTERN_BIN" --data-dir "$scratch/data" user add hash@localhost --password-stdin >/dev/null ||
            die "postern user add (for the password hash) failed"
        python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT password_hash FROM accounts WHERE address = ?", ("hash@localhost",)).fetchone()[0])' \
            "$scratch/data/postern.db" >"$scratch/phc" || die "cannot read the password hash"
    }
    cat "$scratch/phc"
}

dovecot_setup() {
    local dir=$work/dovecot hash
    mkdir -p "$dir/mail"
    chmod 755 "$dir"
    hash=$(password_hash)
    [[ $hash == "\$argon2id\$"* ]] || die "unexpected password hash: $hash"
    printf '%s:{ARGON2ID}%s\n' "$user" "$hash" >"$dir/users"
    chmod 644 "$dir/users"
    chown "$(id -u nobody):$(id -g nobody)" "$dir/mail"

    local auth_clear="disable_plaintext_auth = no" compress="imap_zlib"
    case $(dovecot --version) in
        2.[0-3].*) ;;
        *) auth_clear="auth_allow_cleartext = yes" compress="imap_compress" ;;
    esac
    # COMPRESS=DEFLATE is a plugin in Dovecot (stored mail stays as is).
    local plugins=""
    ((EXTENSIONS)) && plugins="mail_plugins = \$mail_plugins $compress"
    # One imap process per session (Dovecot's default, client_limit 1), so
    # the process limits must cover every IDLE session; the client limits
    # of the shared services (log, stats, anvil, auth) must too.
    local procs=$((IDLE_CONNS + 500)) clients=$((IDLE_CONNS * 2 + 800))
    ((procs >= 1024)) || procs=1024
    ((clients >= 1000)) || clients=1000
    cat >"$dir/dovecot.conf" <<EOF
# Private benchmark instance; nothing here is shared with the system's Dovecot.
instance_name = postern-bench-$$
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
$auth_clear
auth_mechanisms = plain
default_internal_user = dovecot
default_login_user = dovenull
default_process_limit = $procs
default_client_limit = $clients
mail_location = maildir:$dir/mail/%n
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/users
}
userdb {
  driver = static
  args = uid=$(id -u nobody) gid=$(id -g nobody) home=$dir/mail/%n
}
protocol imap {
  mail_max_userip_connections = $((IDLE_CONNS + 1000))
  $plugins
}
service imap-login {
  process_limit = $procs
  inet_listener imap {
    address = 127.0.0.1
    port = $DOVECOT_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service imap {
  process_limit = $procs
}
EOF
    local err
    err=$(doveconf -c "$dir/dovecot.conf" -n 2>&1 >/dev/null) ||
        { echo "$err" >&2; die "dovecot config rejected"; }

    port_in_use "$DOVECOT_PORT" && die "127.0.0.1:$DOVECOT_PORT is in use (set DOVECOT_PORT)"
    dovecot_conf=$dir/dovecot.conf
    dovecot -c "$dir/dovecot.conf" >"$dir/start.log" 2>&1 ||
        { cat "$dir/start.log" "$dir/dovecot.log" >&2 2>/dev/null; die "dovecot did not start"; }
    # The master's pid is needed for the memory figure; it is written just
    # after the daemon forks.
    local i
    for ((i = 0; i < 100; i++)); do
        dovecot_master=$(cat "$dir/run/master.pid" 2>/dev/null || true)
        [[ -z $dovecot_master ]] || break
        sleep 0.1
    done
    [[ -n $dovecot_master ]] || die "dovecot wrote no master.pid within 10 s"
    wait_port "$DOVECOT_PORT" 30 ||
        { tail -n 20 "$dir/dovecot.log" >&2; die "dovecot is not listening on $DOVECOT_PORT"; }
}

# --- Postern --------------------------------------------------------------------

postern_setup() {
    local dir=$work/postern i conns=$((IDLE_CONNS + 1000))
    mkdir -p "$dir"
    # The IDLE sessions are one account from one IP: the listener's caps
    # and the per-account session cap must all be above IDLE_CONNS.
    cat >"$dir/postern.toml" <<EOF
log = "warn"

[limits]
max_connections = $conns
max_connections_per_ip = $conns

[imap]
listen = ["127.0.0.1:$POSTERN_PORT"]
imaps_listen = []
max_connections_per_user = $conns
EOF
    printf '%s\n' "$password" |
        "$POSTERN_BIN" --data-dir "$dir/data" user add "$user" --password-stdin \
            >"$dir/user-add.log" 2>&1 ||
        { cat "$dir/user-add.log" >&2; die "postern user add $user failed"; }

    port_in_use "$POSTERN_PORT" && die "127.0.0.1:$POSTERN_PORT is in use (set POSTERN_PORT)"
    "$IMAPD_BIN" --data-dir "$dir/data" --config "$dir/postern.toml" \
        >"$dir/stdout" 2>"$dir/stderr" &
    postern_pid=$!
    for ((i = 0; i < 300; i++)); do
        grep -q '^postern: ready' "$dir/stdout" 2>/dev/null && break
        kill -0 "$postern_pid" 2>/dev/null ||
            { cat "$dir/stdout" "$dir/stderr" >&2; postern_pid=""; die "imapd exited early"; }
        sleep 0.1
    done
    ((i < 300)) || { cat "$dir/stdout" "$dir/stderr" >&2; die "imapd did not print 'postern: ready' within 30 s"; }
    wait_port "$POSTERN_PORT" 10 ||
        { cat "$dir/stdout" "$dir/stderr" >&2; die "imapd is not listening on $POSTERN_PORT"; }
}

# --- load ---------------------------------------------------------------------

port_of() { if [[ $1 == postern ]]; then echo "$POSTERN_PORT"; else echo "$DOVECOT_PORT"; fi; }
pid_of() { if [[ $1 == postern ]]; then echo "$postern_pid"; else echo "$dovecot_master"; fi; }

# Results: "<server> <measure> <value>" per run.
results=$work/results
: >"$results"

fill() { # server
    local s=$1 out=$work/append.out secs count octets rate
    say "$s: APPEND of $MESSAGES messages, $BATCH in flight (LITERAL+)"
    sync
    run_job "$((APPEND_TIMEOUT + 60))" "$out" python3 "$here/imap_load.py" append \
        "127.0.0.1:$(port_of "$s")" "$user" "$password" "$MESSAGES" "$BATCH" \
        "$APPEND_TIMEOUT" || die "$s: APPEND failed"
    read -r secs count octets <"$out"
    rate=$(awk -v n="$count" -v w="$secs" 'BEGIN { printf "%.1f", n / w }')
    echo "$s append $rate" >>"$results"
    say "$s: APPEND $count messages ($((octets / count)) octets average) in ${secs}s: $rate msgs/s"
}

ops() { # server record(0/1)
    local s=$1 out=$work/ops.out sel flags search hdr hits
    run_job "$((OPS_TIMEOUT + 30))" "$out" python3 "$here/imap_load.py" ops \
        "127.0.0.1:$(port_of "$s")" "$user" "$password" "$MESSAGES" "$word" \
        "$OPS_TIMEOUT" || die "$s: mailbox operations failed"
    read -r sel flags search hdr hits <"$out"
    if (($2)); then
        {
            echo "$s select $sel"
            echo "$s flags $flags"
            echo "$s search $search"
            echo "$s headers $hdr"
            echo "$s hits $hits"
        } >>"$results"
    fi
    say "$s: SELECT ${sel} ms, FETCH FLAGS ${flags} ms, SEARCH ${search} ms ($hits hits), headers ${hdr} ms"
}

memory() { # server
    local s=$1 out=$work/idle.out before after pb pa pss_b pss_a per pss
    say "$s: opening $IDLE_CONNS IDLE sessions"
    run_job "$((IDLE_TIMEOUT + 60))" "$out" python3 "$here/imap_load.py" idle \
        "127.0.0.1:$(port_of "$s")" "$user" "$password" "$IDLE_CONNS" "$IDLE_WORKERS" \
        "$IDLE_TIMEOUT" "$(pid_of "$s")" || die "$s: IDLE sessions failed"
    read -r before after pb pa pss_b pss_a <"$out"
    per=$(awk -v a="$after" -v b="$before" -v n="$IDLE_CONNS" 'BEGIN { printf "%.1f", (a - b) / n }')
    pss=$(awk -v a="$pss_a" -v b="$pss_b" -v n="$IDLE_CONNS" 'BEGIN { printf "%.1f", (a - b) / n }')
    {
        echo "$s pss_per_conn $pss"
        echo "$s rss_before $before"
        echo "$s rss_after $after"
        echo "$s per_conn $per"
        echo "$s procs_after $pa"
    } >>"$results"
    say "$s: RSS ${before} KiB ($pb processes) -> ${after} KiB ($pa processes): $per KiB per session (PSS $pss KiB)"
}

ext() { # server
    local s=$1 out=$work/ext.out f fb q qb so th p pb d db oct
    run_job "$((OPS_TIMEOUT + 30))" "$out" python3 "$here/imap_load.py" ext \
        "127.0.0.1:$(port_of "$s")" "$user" "$password" "$MESSAGES" "$CHANGES" \
        "$FETCH_MIB" "$OPS_TIMEOUT" || die "$s: extension operations failed"
    read -r f fb q qb so th p pb d db oct <"$out"
    {
        echo "$s full_ms $f"
        echo "$s full_bytes $fb"
        echo "$s qresync_ms $q"
        echo "$s qresync_bytes $qb"
        echo "$s sort_ms $so"
        echo "$s thread_ms $th"
        echo "$s fetch_ms $p"
        echo "$s fetch_bytes $pb"
        echo "$s deflate_ms $d"
        echo "$s deflate_bytes $db"
        echo "$s fetch_octets $oct"
    } >>"$results"
    say "$s: resync full ${f} ms ${fb} B, QRESYNC ${q} ms ${qb} B; SORT ${so} ms, THREAD ${th} ms; FETCH ${p} ms ${pb} B, with DEFLATE ${d} ms ${db} B"
}

# The server's RSS once all operations (and IDLE sessions, if any) are
# done: what the run left in the process (caches, allocator growth).
rss_end() { # server
    local s=$1 kib procs
    read -r kib procs < <(python3 "$here/imap_load.py" rss "$(pid_of "$s")") ||
        die "$s: cannot read the server's RSS"
    echo "$s rss_end $kib" >>"$results"
    say "$s: RSS after the run ${kib} KiB ($procs processes)"
    [[ -z $AT_END ]] || $AT_END "$(pid_of "$s")" "$s" || say "$s: AT_END failed"
}

# --- main -----------------------------------------------------------------------

load1=$(cut -d' ' -f1 /proc/loadavg)
say "$MESSAGES messages, search word '$word', repeat $REPEAT, $IDLE_CONNS IDLE sessions; load average now $load1"
say "work dir: $work"
for s in "${servers[@]}"; do "${s}_setup"; done
for s in "${servers[@]}"; do fill "$s"; done
for s in "${servers[@]}"; do
    for ((w = 1; w <= WARMUP; w++)); do ops "$s" 0; done
done
for ((run = 1; run <= REPEAT; run++)); do
    for s in "${servers[@]}"; do
        sync
        ops "$s" 1
    done
done
if ((EXTENSIONS)); then
    for ((run = 1; run <= REPEAT; run++)); do
        for s in "${servers[@]}"; do
            sync
            ext "$s"
        done
    done
fi
if ((IDLE_CONNS > 0)); then
    for s in "${servers[@]}"; do memory "$s"; done
fi
for s in "${servers[@]}"; do rss_end "$s"; done

# median SERVER MEASURE
median() {
    awk -v s="$1" -v k="$2" '
        $1 == s && $2 == k && $3 != "-" { v[n++] = $3 }
        END {
            if (n == 0) { print "-"; exit }
            for (i = 0; i < n; i++) for (j = i + 1; j < n; j++)
                if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
            m = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
            printf (m == int(m) ? "%d" : "%.1f"), m
        }' "$results"
}
ratio() { # a b: a / b
    if [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]]; then
        awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'
    else
        echo "-"
    fi
}
# row LABEL MEASURE HIGHER-IS-BETTER(1/0): the ratio is always "how many
# times better Postern is": postern/dovecot for rates, dovecot/postern for
# times and sizes.
row() {
    local p d r
    p=$(median postern "$2") d=$(median dovecot "$2")
    if (($3)); then r="$(ratio "$p" "$d") (p/d)"; else r="$(ratio "$d" "$p") (d/p)"; fi
    printf '| %-40s | %10s | %10s | %-11s |\n' "$1" "$p" "$d" "$r"
}

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
fs=$(df --output=fstype "$work" | tail -n 1)

echo
echo "mailbox: $MESSAGES messages of 1-2 KiB in INBOX, one account per server"
echo "APPEND once per server; operations: median of $REPEAT runs after $WARMUP warm-up run(s)"
printf '| %-40s | %10s | %10s | %-11s |\n' operation postern dovecot ratio
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..42})" "$(printf -- '-%.0s' {1..12})" \
    "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..13})"
row "APPEND msgs/s (LITERAL+, $BATCH in flight)" append 1
row "SELECT INBOX ms" select 0
row "UID FETCH 1:* (FLAGS) ms" flags 0
row "UID SEARCH SUBJECT $word ms" search 0
row "UID FETCH last 100 headers ms" headers 0
if ((IDLE_CONNS > 0)); then
    row "RSS with 200 warm-up sessions, KiB" rss_before 0
    row "RSS with $IDLE_CONNS more in IDLE, KiB" rss_after 0
    row "KiB per IDLE session (RSS)" per_conn 0
    row "KiB per IDLE session (PSS, for info)" pss_per_conn 0
fi
row "RSS after the run, KiB" rss_end 0
if ((EXTENSIONS)); then
    row "resync: SELECT + UID FETCH 1:* (FLAGS) ms" full_ms 0
    row "resync: SELECT + UID FETCH 1:* bytes" full_bytes 0
    row "resync: QRESYNC after $CHANGES changes ms" qresync_ms 0
    row "resync: QRESYNC after $CHANGES changes bytes" qresync_bytes 0
    row "UID SORT (DATE) ms" sort_ms 0
    row "UID THREAD REFERENCES ms" thread_ms 0
    row "FETCH $FETCH_MIB MiB BODY[] ms" fetch_ms 0
    row "FETCH $FETCH_MIB MiB BODY[] wire bytes" fetch_bytes 0
    row "same with COMPRESS=DEFLATE ms" deflate_ms 0
    row "same with COMPRESS=DEFLATE wire bytes" deflate_bytes 0
fi
echo
echo "ratio: how many times better Postern is; (p/d) = postern / dovecot for rates,"
echo "(d/p) = dovecot / postern for times and memory; above 1 = Postern better."
echo "SEARCH hits: postern $(median postern hits), dovecot $(median dovecot hits)" \
    "(\"-\" = the server refused UID SEARCH)"
if ((IDLE_CONNS > 0)); then
    echo "RSS: VmRSS summed over the server's processes; dovecot: master and all its" \
        "children ($(median dovecot procs_after) processes with the sessions open," \
        "one imap process per session), postern: the one imapd process."
    echo "RSS counts pages shared between Dovecot's processes (libraries) once per" \
        "process; PSS splits them among the sharers."
fi
echo
echo "machine: $(nproc) cpus ($cpu), Linux $(uname -r), load average at start $load1, $fs temp dir"
echo "client: Python $(python3 -c 'import platform; print(platform.python_version())'), raw sockets (bench/imap_load.py)"
if want dovecot; then
    echo "dovecot: $(dovecot --version) (private instance, Maildir, default fsync and service settings)"
fi
if want postern; then
    echo "postern: $("$IMAPD_BIN" --version 2>/dev/null || echo "version unknown")"
fi
