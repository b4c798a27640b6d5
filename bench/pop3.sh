#!/usr/bin/env bash
# POP3 download throughput: Postern vs a private Dovecot.
#
# A benchmark, run by hand; never in CI. Needs root (it installs
# dovecot-pop3d and runs a throwaway Dovecot instance). Everything binds
# 127.0.0.1 only, and the whole run is bounded: every wait has a time limit.
#
#   bench/pop3.sh [--sessions N] [--messages N] [--size-kb N] [--repeat N]
#                 [--only postern|dovecot|both] [--keep]
#
# Settings (flags win over environment variables of the same meaning):
#   SESSIONS=10        concurrent POP3 sessions, one account each (POP3 locks
#                      a mailbox per account, so each session has its own)
#   MESSAGES=2000      messages in each account's mailbox
#   SIZE_KB=4          message size in KiB (headers + body, as sent)
#   REPEAT=3           timed runs per server; the table shows the median
#   WARMUP=1           untimed passes over every mailbox before timing (the
#                      first pass makes Dovecot index the Maildir); 0 = none
#   ONLY=both          postern | dovecot | both
#   DOVECOT_PORT=11110     Dovecot POP3 port on 127.0.0.1
#   POSTERN_PORT=11210     Postern POP3 port on 127.0.0.1
#   POSTERN_SMTP_PORT=2726 Postern SMTP port, used only to fill the mailboxes
#   FILL_SESSIONS=10   parallel SMTP connections filling Postern
#   FILL_TIMEOUT=1800  seconds to fill Postern (sending and delivery)
#   LOAD_TIMEOUT=600   seconds one timed run (all its sessions) may take
#   POLL=0.5           seconds between Postern mailbox counts while filling
#   POSTERN_BIN=target/release/postern (built with cargo if missing)
#   KEEP=0             1 keeps the temp dir (configs, logs, mailboxes); it is
#                      also kept when the script fails, for the logs
#   TMPDIR             where the temp dir goes
#
# Each timed run is one of:
#   1 session   the first account alone: connect, USER/PASS, STAT, UIDL,
#               RETR of every message, QUIT (nothing deleted, so runs repeat)
#   N sessions  the same in every account at once
# "msgs/s" = messages retrieved / wall seconds, wall = from the start of the
# first session to the last QUIT reply. The client is Python's poplib, one
# process per session, the same for both servers; it shares the CPUs with the
# server, so the "client cpu" line says how much of the time it used.
#
# Dovecot's mailboxes are Maildirs written directly (files named as Dovecot
# names its own, with S= and W= sizes); Postern's are filled over SMTP with
# the same messages. Both servers start once, are filled once, and stay up
# for all runs; with REPEAT>1 they alternate.
#
# Logins cost the same on both sides: Dovecot's users get the very argon2id
# hash Postern stores ({ARGON2ID} PHC string), not a cleartext password.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

SESSIONS=${SESSIONS:-10}
MESSAGES=${MESSAGES:-2000}
SIZE_KB=${SIZE_KB:-4}
REPEAT=${REPEAT:-3}
WARMUP=${WARMUP:-1}
ONLY=${ONLY:-both}
DOVECOT_PORT=${DOVECOT_PORT:-11110}
POSTERN_PORT=${POSTERN_PORT:-11210}
POSTERN_SMTP_PORT=${POSTERN_SMTP_PORT:-2726}
FILL_SESSIONS=${FILL_SESSIONS:-10}
FILL_TIMEOUT=${FILL_TIMEOUT:-1800}
LOAD_TIMEOUT=${LOAD_TIMEOUT:-600}
POLL=${POLL:-0.5}
POSTERN_BIN=${POSTERN_BIN:-$repo/target/release/postern}
KEEP=${KEEP:-0}
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
        --keep) KEEP=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "pop3: unknown argument: $1 (try --help)" >&2; exit 64 ;;
    esac
done

die() { echo "pop3: $*" >&2; exit 1; }
say() { echo "pop3: $*" >&2; }

for v in SESSIONS MESSAGES SIZE_KB REPEAT DOVECOT_PORT POSTERN_PORT \
    POSTERN_SMTP_PORT FILL_SESSIONS FILL_TIMEOUT LOAD_TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be a number, got '$WARMUP'"
((SESSIONS <= 100)) || die "SESSIONS is at most 100 (one account each)"
case $ONLY in
    both) servers=(postern dovecot) ;;
    postern | dovecot) servers=("$ONLY") ;;
    *) die "ONLY must be postern, dovecot or both, got '$ONLY'" ;;
esac
want() { [[ " ${servers[*]} " == *" $1 "* ]]; }

# --- tools --------------------------------------------------------------------

export PATH=$PATH:/usr/sbin:/sbin
command -v python3 >/dev/null || die "python3 is needed (bench/pop3_load.py)"
if want dovecot; then
    ((EUID == 0)) || die "the private Dovecot instance must be started as root"
    if ! command -v dovecot >/dev/null || [[ ! -x /usr/lib/dovecot/pop3 ]]; then
        say "installing dovecot-pop3d"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y dovecot-pop3d >/dev/null ||
            { apt-get update >/dev/null && apt-get install -y dovecot-pop3d >/dev/null; } ||
            die "apt-get install dovecot-pop3d failed"
    fi
    command -v dovecot >/dev/null || die "dovecot not found after installing dovecot-pop3d"
    id dovecot >/dev/null 2>&1 && id dovenull >/dev/null 2>&1 ||
        die "the users dovecot and dovenull are missing (the package creates them)"
fi
# Dovecot needs it too: its password hash is made by postern.
if [[ ! -x $POSTERN_BIN ]]; then
    [[ $POSTERN_BIN == "$repo/target/release/postern" ]] ||
        die "POSTERN_BIN=$POSTERN_BIN is not an executable"
    say "building postern (cargo build --release -p postern)"
    (cd "$repo" && cargo build --release -p postern) ||
        die "cannot build postern"
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
chmod 755 "$work" # Dovecot's login and mail processes run as other users
job_pid="" postern_pid="" dovecot_conf="" dovecot_master=""

stop_dovecot() {
    [[ -n $dovecot_conf ]] || return 0
    local conf=$dovecot_conf master=$dovecot_master i
    dovecot_conf="" dovecot_master=""
    [[ -n $master ]] || master=$(cat "$work/dovecot/run/master.pid" 2>/dev/null || true)
    doveadm -c "$conf" stop >/dev/null 2>&1 || [[ -z $master ]] || kill -TERM "$master" 2>/dev/null || true
    if [[ -n $master ]]; then
        for ((i = 0; i < 100; i++)); do
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
    say "postern $pid did not stop within 20 s of SIGTERM; killing it"
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

size_bytes=$((SIZE_KB * 1024))
password=bench-password
users=()
for ((i = 1; i <= SESSIONS; i++)); do users+=("$(printf 'bench%02d@localhost' "$i")"); done

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
    local dir=$work/dovecot u hash
    mkdir -p "$dir/mail"
    chmod 755 "$dir"
    hash=$(password_hash)
    [[ $hash == '$argon2id$'* ]] || die "unexpected password hash: $hash"
    : >"$dir/users"
    for u in "${users[@]}"; do
        printf '%s:{ARGON2ID}%s\n' "$u" "$hash" >>"$dir/users"
    done
    chmod 644 "$dir/users"

    local auth_clear="disable_plaintext_auth = no"
    case $(dovecot --version) in
        2.[0-3].*) ;;
        *) auth_clear="auth_allow_cleartext = yes" ;;
    esac
    cat >"$dir/dovecot.conf" <<EOF
# Private benchmark instance; nothing here is shared with the system's Dovecot.
instance_name = postern-bench-$$
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
listen = 127.0.0.1
protocols = pop3
ssl = no
$auth_clear
auth_mechanisms = plain
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:$dir/mail/%n
pop3_uidl_format = %08Xu%08Xv
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/users
}
userdb {
  driver = static
  args = uid=$(id -u nobody) gid=$(id -g nobody) home=$dir/mail/%n
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $DOVECOT_PORT
  }
  inet_listener pop3s {
    port = 0
  }
}
EOF
    local err
    err=$(doveconf -c "$dir/dovecot.conf" -n 2>&1 >/dev/null) ||
        { echo "$err" >&2; die "dovecot config rejected"; }

    say "dovecot: writing $SESSIONS Maildirs x $MESSAGES messages"
    for u in "${users[@]}"; do
        python3 "$here/pop3_load.py" fill-maildir "$dir/mail/${u%@*}" "$MESSAGES" "$size_bytes" ||
            die "filling the Maildir of $u failed"
    done
    chown -R "$(id -u nobody):$(id -g nobody)" "$dir/mail"

    port_in_use "$DOVECOT_PORT" && die "127.0.0.1:$DOVECOT_PORT is in use (set DOVECOT_PORT)"
    dovecot_conf=$dir/dovecot.conf
    dovecot -c "$dir/dovecot.conf" >"$dir/start.log" 2>&1 ||
        { cat "$dir/start.log" "$dir/dovecot.log" >&2 2>/dev/null; die "dovecot did not start"; }
    dovecot_master=$(cat "$dir/run/master.pid" 2>/dev/null || true)
    wait_port "$DOVECOT_PORT" 30 ||
        { tail -n 20 "$dir/dovecot.log" >&2; die "dovecot is not listening on $DOVECOT_PORT"; }
}

# --- Postern --------------------------------------------------------------------

postern_setup() {
    local dir=$work/postern u i
    mkdir -p "$dir"
    cat >"$dir/postern.toml" <<EOF
log = "warn"

[smtp]
listen = ["127.0.0.1:$POSTERN_SMTP_PORT"]
submission_listen = []
submissions_listen = []

[pop3]
listen = ["127.0.0.1:$POSTERN_PORT"]
pop3s_listen = []
delete_mode = "expunge"
EOF
    for u in "${users[@]}"; do
        printf '%s\n' "$password" |
            "$POSTERN_BIN" --data-dir "$dir/data" user add "$u" --password-stdin \
                >>"$dir/user-add.log" 2>&1 ||
            { cat "$dir/user-add.log" >&2; die "postern user add $u failed"; }
    done

    port_in_use "$POSTERN_PORT" && die "127.0.0.1:$POSTERN_PORT is in use (set POSTERN_PORT)"
    port_in_use "$POSTERN_SMTP_PORT" && die "127.0.0.1:$POSTERN_SMTP_PORT is in use (set POSTERN_SMTP_PORT)"
    "$POSTERN_BIN" --data-dir "$dir/data" --config "$dir/postern.toml" up \
        >"$dir/stdout" 2>"$dir/stderr" &
    postern_pid=$!
    for ((i = 0; i < 300; i++)); do
        grep -q '^postern: ready' "$dir/stdout" 2>/dev/null && break
        kill -0 "$postern_pid" 2>/dev/null ||
            { cat "$dir/stdout" "$dir/stderr" >&2; postern_pid=""; die "postern up exited early"; }
        sleep 0.1
    done
    ((i < 300)) || { cat "$dir/stdout" "$dir/stderr" >&2; die "postern did not print 'postern: ready' within 30 s"; }
    grep -q "^postern: pop3 listening on 127.0.0.1:$POSTERN_PORT" "$dir/stdout" ||
        say "warning: postern did not print 'pop3 listening on 127.0.0.1:$POSTERN_PORT'"
    wait_port "$POSTERN_PORT" 10 ||
        { cat "$dir/stdout" "$dir/stderr" >&2; die "postern is not listening for POP3 on $POSTERN_PORT"; }

    say "postern: sending $SESSIONS x $MESSAGES messages over SMTP ($FILL_SESSIONS connections)"
    local t0=$EPOCHREALTIME sent left
    run_job "$FILL_TIMEOUT" "$dir/fill.out" python3 "$here/pop3_load.py" fill-smtp \
        "127.0.0.1:$POSTERN_SMTP_PORT" "$MESSAGES" "$size_bytes" "$FILL_SESSIONS" \
        "$FILL_TIMEOUT" "${users[@]}" || die "filling postern over SMTP failed"
    sent=$(cat "$dir/fill.out")
    for u in "${users[@]}"; do
        left=$(awk -v t="$FILL_TIMEOUT" -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { x = t - (b - a); print (x < 1 ? 1 : x) }')
        local out
        out=$(python3 "$here/smtp_accept_wait.py" postern "$POSTERN_BIN" "$dir/data" "$u" \
            "$MESSAGES" "$left" "$POLL") || die "postern: mailbox of $u not filled: ${out:-poll failed}"
        [[ ${out#* } == "$MESSAGES" ]] ||
            die "postern: $u has ${out#* } messages, expected $MESSAGES (left from an earlier run?)"
    done
    say "postern: filled (SMTP ${sent}s, all delivered after $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')s)"
}

# --- load ---------------------------------------------------------------------

port_of() { if [[ $1 == postern ]]; then echo "$POSTERN_PORT"; else echo "$DOVECOT_PORT"; fi; }

# load SERVER USER...: sets l_wall l_msgs l_octets l_cpu.
load() {
    local s=$1 out=$work/load.out
    shift
    run_job "$((LOAD_TIMEOUT + 30))" "$out" python3 "$here/pop3_load.py" load \
        "127.0.0.1:$(port_of "$s")" "$password" "$MESSAGES" "$LOAD_TIMEOUT" "$@" ||
        die "$s: POP3 load failed"
    read -r l_wall l_msgs l_octets l_cpu <"$out"
    ((l_msgs == MESSAGES * $#)) || die "$s: retrieved $l_msgs messages, expected $((MESSAGES * $#))"
}

# Results: "<server> <kind> <msgs/s> <wall s> <octets/msg>" per run.
results=$work/results
: >"$results"

timed() { # server kind user...
    local s=$1 kind=$2 rate per
    shift 2
    sync
    load "$s" "$@"
    rate=$(awk -v n="$l_msgs" -v w="$l_wall" 'BEGIN { printf "%.1f", n / w }')
    per=$(awk -v n="$l_msgs" -v o="$l_octets" 'BEGIN { printf "%.0f", o / n }')
    echo "$s $kind $rate $l_wall $per" >>"$results"
    say "$s run $run/$REPEAT, $# session(s): $rate msgs/s, ${l_wall}s wall," \
        "$per octets/msg, client cpu ${l_cpu}s"
}

# --- main -----------------------------------------------------------------------

load1=$(cut -d' ' -f1 /proc/loadavg)
say "load: $SESSIONS accounts x $MESSAGES msgs x $SIZE_KB KiB; repeat $REPEAT; load average now $load1"
say "work dir: $work"
for s in "${servers[@]}"; do "${s}_setup"; done
for s in "${servers[@]}"; do
    for ((w = 1; w <= WARMUP; w++)); do
        say "$s: warm-up pass $w over all $SESSIONS mailboxes"
        load "$s" "${users[@]}"
    done
done
for ((run = 1; run <= REPEAT; run++)); do
    for s in "${servers[@]}"; do
        timed "$s" one "${users[0]}"
        timed "$s" all "${users[@]}"
    done
done

# median SERVER KIND COLUMN (3 msgs/s, 4 wall s, 5 octets/msg)
median() {
    awk -v s="$1" -v k="$2" -v c="$3" '
        $1 == s && $2 == k { v[n++] = $c }
        END {
            if (n == 0) { print "-"; exit }
            for (i = 0; i < n; i++) for (j = i + 1; j < n; j++)
                if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
            m = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
            printf (c == 3 ? "%.1f" : c == 4 ? "%.3f" : "%.0f"), m
        }' "$results"
}
ratio() {
    if [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]]; then
        awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'
    else
        echo "-"
    fi
}
row() { # label kind column
    local p d
    p=$(median postern "$2" "$3") d=$(median dovecot "$2" "$3")
    printf '%-22s %10s %10s %8s\n' "$1" "$p" "$d" "$(ratio "$p" "$d")"
}

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
fs=$(df --output=fstype "$work" | tail -n 1)

echo
echo "load: STAT + UIDL + RETR of $MESSAGES x $SIZE_KB KiB messages per session, no DELE"
echo "      1 session = one account; $SESSIONS sessions = $SESSIONS accounts at once"
((REPEAT > 1)) && echo "median of $REPEAT runs per server, after $WARMUP warm-up pass(es)"
printf '%-22s %10s %10s %8s\n' "" postern dovecot ratio
row "1 session msgs/s" one 3
row "1 session wall s" one 4
row "$SESSIONS sessions msgs/s" all 3
row "$SESSIONS sessions wall s" all 4
row "octets per message" all 5
echo "(ratio = postern / dovecot: above 1 is better for postern in msgs/s, worse in wall s)"
echo
echo "machine: $(nproc) cpus ($cpu), Linux $(uname -r), load average at start $load1, $fs temp dir"
echo "client: Python $(python3 -c 'import platform; print(platform.python_version())') poplib, one process per session"
if want dovecot; then
    echo "dovecot: $(dovecot --version) (private instance, Maildir, default service settings)"
fi
if want postern; then
    echo "postern: $("$POSTERN_BIN" --version 2>/dev/null || echo "version unknown")"
fi
