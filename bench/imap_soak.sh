#!/usr/bin/env bash
# IMAP soak: Dovecot's imaptest, steady mix, against Postern's imapd (its
# store in SQLite, or in PostgreSQL, or both) and a private Dovecot, one
# after the other for the same time each; prints per minute the command
# rate, the rows of Postern's change feed and tombstones, and the size on
# disk, so that "size and rate stay flat" can be seen.
#
# A benchmark, run by hand; never in CI. Needs root (it runs a throwaway
# Dovecot instance). Everything binds 127.0.0.1 only, and the run is
# bounded: imaptest stops itself after MINUTES and every wait has a limit.
#
#   IMAPTEST=/path/to/imaptest bench/imap_soak.sh [--minutes N]
#                 [--only postern|postern_pg|dovecot|both|all] [--keep]
#
# imaptest is not part of Postern and is not fetched or built here. Build it
# once from https://github.com/dovecot/imaptest against the system's
# Dovecot (Debian 12: apt-get install dovecot-dev; the release-2.3 branch;
# ./autogen.sh && ./configure --with-dovecot=/usr/lib/dovecot && make) and
# point IMAPTEST at src/imaptest. (Debian's 2.3.19 headers give
# imap_parser_create() a fourth argument, `params`; older imaptest calls it
# with three: add `, NULL`.)
#
# Settings (flags win over environment variables of the same meaning):
#   IMAPTEST           the imaptest binary (required)
#   MINUTES=10         minutes of load per server
#   CLIENTS=10         imaptest clients, all logged in to one account
#   MSGS=30            imaptest's target number of messages in the mailbox
#   SEED=1             imaptest's random seed (the same for both servers)
#   IMAPTEST_ARGS=     more imaptest arguments, e.g. "expunge=20 fetch2=0";
#                      the steady mix is imaptest's default with logout=0
#                      (sessions stay logged in)
#   MBOX_MESSAGES=500  messages in the generated mbox imaptest APPENDs from
#   SAMPLE_SECS=60     seconds per table row
#   ONLY=both          postern | postern_pg | dovecot | both | all:
#                      postern = Postern on SQLite (its data dir), postern_pg
#                      = Postern with [store] in PostgreSQL (a private
#                      cluster this script starts, bench/lib/pg-cluster.sh;
#                      needs the postgresql package), both = postern and
#                      dovecot, all = the three
#   POSTERN_PORT=11343 Postern IMAP port on 127.0.0.1
#   DOVECOT_PORT=11443 Dovecot IMAP port on 127.0.0.1
#   POSTERN_BIN, IMAPD_BIN  default $CARGO_TARGET_DIR/release/{postern,imapd}
#                      (target/ when CARGO_TARGET_DIR is unset); built with
#                      cargo if missing
#   POSTERN_CONFIG=    extra TOML appended to Postern's config (e.g. a
#                      [store] section to try other pruning bounds; for
#                      postern_pg its keys go after backend and url, so
#                      give them without the [store] line)
#   KEEP=0             1 keeps the temp dir (configs, logs, databases); it is
#                      also kept when the script fails
#   TMPDIR             where the temp dir goes
#
# What is measured, per server, every SAMPLE_SECS:
#   cmd/s      imaptest's commands completed in that interval (the sum of
#              its per-second counters: LOGIN, LIST, STATUS, SELECT, FETCH,
#              FETCH2, COPY, STORE, DELETE, EXPUNGE, APPEND), per second
#   CPU        the server's CPU time (user + system; Dovecot: all its
#              processes) in ms per 1,000 of those commands: what a command
#              costs, which other load on the machine sways less than the rate
#   changes    rows in Postern's change feed (`changes`), at the end of it
#   tombst.    rows in `expunged` (expunge tombstones)
#   msgs       messages alive in the mailbox
#   P DB, WAL  Postern's postern.db and postern.db-wal, MiB (PostgreSQL:
#              the database's size, pg_database_size; WAL: -)
#   PG CPU     postern_pg only: the PostgreSQL server's CPU (postmaster and
#              backends) in ms per 1,000 commands, besides Postern's own
#   D disk     Dovecot's whole mail directory (Maildir, index, cache and
#              transaction logs), MiB
#   RSS        the server's resident memory, MiB (Dovecot: all its processes)
# and at the end the change of the rate from the first interval to the
# last. imaptest's own "Error:" lines (protocol checks it failed) are
# counted; a few are shown.
#
# The two servers run one after the other, not at once, so they do not
# share the CPUs; the client is the same binary with the same seed. Dovecot
# stores a Maildir with its default fsync settings (mail_fsync = optimized:
# saved mail is fsynced, flag and index changes are not); Postern likewise
# fsyncs mail it accepts or creates and commits flag changes and expunges
# without waiting for the disk ([store] sync_every_commit = false). Both
# check the same argon2id hash (Postern's parameters) at login.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}

IMAPTEST=${IMAPTEST:-}
MINUTES=${MINUTES:-10}
CLIENTS=${CLIENTS:-10}
MSGS=${MSGS:-30}
SEED=${SEED:-1}
IMAPTEST_ARGS=${IMAPTEST_ARGS:-}
MBOX_MESSAGES=${MBOX_MESSAGES:-500}
SAMPLE_SECS=${SAMPLE_SECS:-60}
ONLY=${ONLY:-both}
POSTERN_PORT=${POSTERN_PORT:-11343}
DOVECOT_PORT=${DOVECOT_PORT:-11443}
POSTERN_BIN=${POSTERN_BIN:-$target/release/postern}
IMAPD_BIN=${IMAPD_BIN:-$target/release/imapd}
POSTERN_CONFIG=${POSTERN_CONFIG:-}
KEEP=${KEEP:-0}
# The daemons read every POSTERN_* variable as configuration and refuse
# unknown ones: the settings above are this script's, not theirs.
for v in $(compgen -e POSTERN_); do export -n "$v"; done

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while (($#)); do
    case $1 in
        -m | --minutes) MINUTES=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "imap_soak: unknown argument: $1 (try --help)" >&2; exit 64 ;;
    esac
done

die() { echo "imap_soak: $*" >&2; exit 1; }
say() { echo "imap_soak: $*" >&2; }

for v in MINUTES CLIENTS MSGS SEED MBOX_MESSAGES SAMPLE_SECS POSTERN_PORT DOVECOT_PORT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
case $ONLY in
    both) servers=(postern dovecot) ;;
    all) servers=(postern postern_pg dovecot) ;;
    postern | postern_pg | dovecot) servers=("$ONLY") ;;
    *) die "ONLY must be postern, postern_pg, dovecot, both or all, got '$ONLY'" ;;
esac
want() { [[ " ${servers[*]} " == *" $1 "* ]]; }
secs=$((MINUTES * 60))

# --- tools --------------------------------------------------------------------

export PATH=$PATH:/usr/sbin:/sbin
[[ -n $IMAPTEST ]] || die "set IMAPTEST to the imaptest binary (see --help for how to build it)"
[[ -x $IMAPTEST ]] || die "IMAPTEST=$IMAPTEST is not an executable"
# imaptest links libdovecot, which Debian keeps outside the linker's path.
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/usr/lib/dovecot
"$IMAPTEST" --help >/dev/null 2>&1 || die "$IMAPTEST does not run (try: $IMAPTEST --help)"
command -v python3 >/dev/null || die "python3 is needed (mbox and database samples)"
if want dovecot; then
    ((EUID == 0)) || die "the private Dovecot instance must be started as root"
    command -v dovecot >/dev/null && [[ -x /usr/lib/dovecot/imap ]] ||
        die "dovecot-imapd is not installed (apt-get install dovecot-imapd)"
    id dovecot >/dev/null 2>&1 && id dovenull >/dev/null 2>&1 ||
        die "the users dovecot and dovenull are missing (the package creates them)"
fi
if { want postern || want postern_pg; } && [[ ! -x $POSTERN_BIN || ! -x $IMAPD_BIN ]]; then
    [[ $POSTERN_BIN == "$target/release/postern" && $IMAPD_BIN == "$target/release/imapd" ]] ||
        die "POSTERN_BIN=$POSTERN_BIN or IMAPD_BIN=$IMAPD_BIN is not an executable"
    say "building postern and imapd (cargo build --release -p postern -p imapd)"
    (cd "$repo" && cargo build --release -p postern -p imapd) ||
        die "cannot build postern and imapd"
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

work=$(mktemp -d "${TMPDIR:-/tmp}/postern-soak.XXXXXX")
chmod 755 "$work" # Dovecot's login and mail processes run as other users
# shellcheck source=bench/lib/pg-cluster.sh
source "$here/lib/pg-cluster.sh"
load_pid="" postern_pid="" dovecot_conf="" dovecot_master=""

stop_load() {
    [[ -n $load_pid ]] || return 0
    local pid=$load_pid
    load_pid=""
    kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
}

stop_dovecot() {
    [[ -n $dovecot_conf ]] || return 0
    local conf=$dovecot_conf master=$dovecot_master i
    dovecot_conf="" dovecot_master=""
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

stop_postern_pg() { stop_postern; }

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM HUP
    stop_load
    stop_postern
    stop_dovecot
    pg_cluster_stop
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

user=soak@localhost
password=soak-password

# --- the mbox imaptest appends from ---------------------------------------------

# Plain and multipart messages of 1 to 12 KiB, the same every run.
python3 - "$work/soak.mbox" "$MBOX_MESSAGES" <<'EOF'
import random, sys
path, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
words = ("mail server store change feed modseq flag expunge append select fetch "
         "tombstone horizon batch writer reader index cache journal page").split()
def para():
    return " ".join(rng.choice(words) for _ in range(rng.randint(8, 14))) + "\n"
with open(path, "w") as f:
    for i in range(count):
        f.write(f"From sender{i % 37}@example.com Mon Jan  1 00:00:00 2024\n")
        f.write(f"From: Sender {i % 37} <sender{i % 37}@example.com>\n")
        f.write("To: soak@localhost\n")
        f.write(f"Subject: soak {i}: {' '.join(rng.choice(words) for _ in range(4))}\n")
        f.write(f"Date: Mon, 1 Jan 2024 {i % 24:02d}:{i % 60:02d}:00 +0000\n")
        f.write(f"Message-ID: <soak.{i}@example.com>\n")
        body = "".join(para() for _ in range(rng.randint(10, 120)))
        if i % 4 == 0:
            f.write("MIME-Version: 1.0\n")
            f.write(f'Content-Type: multipart/alternative; boundary="b{i}"\n\n')
            f.write(f"--b{i}\nContent-Type: text/plain; charset=us-ascii\n\n{body}\n")
            f.write(f"--b{i}\nContent-Type: text/html; charset=us-ascii\n\n<p>{body}</p>\n")
            f.write(f"--b{i}--\n\n")
        else:
            f.write("\n" + body.replace("\nFrom ", "\n>From ") + "\n")
EOF

# --- Dovecot --------------------------------------------------------------------

dovecot_setup() {
    local dir=$work/dovecot
    mkdir -p "$dir/mail"
    chmod 755 "$dir"
    # The same argon2id hash as Postern keeps (made by `postern user add`,
    # with its parameters), so that both servers pay the same for a login.
    local hash
    printf '%s\n' "$password" |
        "$POSTERN_BIN" --data-dir "$work/hash" user add "$user" --password-stdin \
            >"$dir/hash.log" 2>&1 || { cat "$dir/hash.log" >&2; die "postern user add failed"; }
    hash=$(python3 -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT password_hash FROM accounts").fetchone()[0])' \
        "$work/hash/postern.db") || die "cannot read the password hash"
    printf '%s:{ARGON2ID}%s\n' "$user" "$hash" >"$dir/users"
    chmod 644 "$dir/users"
    chown "$(id -u nobody):$(id -g nobody)" "$dir/mail"
    local auth_clear="disable_plaintext_auth = no"
    case $(dovecot --version) in
        2.[0-3].*) ;;
        *) auth_clear="auth_allow_cleartext = yes" ;;
    esac
    cat >"$dir/dovecot.conf" <<EOF
# Private soak instance; nothing here is shared with the system's Dovecot.
instance_name = postern-soak-$$
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
mail_location = maildir:$dir/mail/%n
passdb {
  driver = passwd-file
  args = username_format=%u $dir/users
}
userdb {
  driver = static
  args = uid=$(id -u nobody) gid=$(id -g nobody) home=$dir/mail/%n
}
protocol imap {
  mail_max_userip_connections = $((CLIENTS + 100))
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $DOVECOT_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
EOF
    local err
    err=$(doveconf -c "$dir/dovecot.conf" -n 2>&1 >/dev/null) ||
        { echo "$err" >&2; die "dovecot config rejected"; }
    port_in_use "$DOVECOT_PORT" && die "127.0.0.1:$DOVECOT_PORT is in use (set DOVECOT_PORT)"
    dovecot_conf=$dir/dovecot.conf
    dovecot -c "$dir/dovecot.conf" >"$dir/start.log" 2>&1 ||
        { cat "$dir/start.log" "$dir/dovecot.log" >&2 2>/dev/null; die "dovecot did not start"; }
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

postern_setup() { postern_start postern ""; }

# Postern with its store in a database of a private PostgreSQL cluster
# (started once, for this run).
postern_pg_setup() {
    [[ -n $pg_data ]] || pg_cluster_start "$work/pg" || die "no private PostgreSQL cluster"
    say "PostgreSQL $(pg_cluster_version) on 127.0.0.1:$pg_port (its defaults: fsync on, synchronous_commit on)"
    pg_cluster_createdb soak || die "cannot create the database"
    postern_start postern_pg "[store]
backend = \"postgres\"
url = \"$(pg_cluster_url soak)\""
}

postern_start() { # name store-section
    local dir=$work/$1 i
    mkdir -p "$dir"
    cat >"$dir/postern.toml" <<EOF
log = "warn"

[imap]
listen = ["127.0.0.1:$POSTERN_PORT"]
imaps_listen = []
max_connections_per_user = $((CLIENTS + 100))
$2
$POSTERN_CONFIG
EOF
    printf '%s\n' "$password" |
        "$POSTERN_BIN" --config "$dir/postern.toml" --data-dir "$dir/data" user add "$user" \
            --password-stdin >"$dir/user-add.log" 2>&1 ||
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

# --- samples --------------------------------------------------------------------

# RSS in KiB of a process and all its descendants.
rss_tree() {
    local pid=$1 total kids k
    total=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
    for k in $kids; do total=$((total + $(rss_tree "$k"))); done
    echo "${total:-0}"
}

# CPU time in clock ticks of a process and all its descendants, with the
# children they have reaped (Dovecot's ended processes).
cpu_tree() {
    local pid=$1 total kids k
    total=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }')
    kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
    for k in $kids; do total=$((${total:-0} + $(cpu_tree "$k"))); done
    echo "${total:-0}"
}

# Commands imaptest has counted so far (its per-second rows, counts only).
commands_so_far() {
    awk -F'\t' 'NR > 1 { for (i = 1; i <= NF; i += 3) s += $i } END { print s + 0 }' "$1" 2>/dev/null || echo 0
}

# One line: changes expunged messages db_bytes wal_bytes (read-only, a
# moment's read transaction).
postern_sample() {
    python3 - "$work/postern/data/postern.db" <<'EOF'
import os, sqlite3, sys
db = sys.argv[1]
conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
count = lambda table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
counts = [count("changes"), count("expunged"), count("messages")]
conn.close()
size = lambda p: os.path.getsize(p) if os.path.exists(p) else 0
print(*counts, size(db), size(db + "-wal"))
EOF
}

# The same from PostgreSQL: the database's size, no WAL of its own.
postern_pg_sample() {
    local counts
    counts=$(pg_cluster_psql soak "SELECT (SELECT count(*) FROM changes), (SELECT count(*) FROM expunged),
        (SELECT count(*) FROM messages), pg_database_size('soak')") || return 1
    echo "${counts//|/ } -"
}

# samples: "<server> <row> <changes> <expunged> <messages> <db bytes>
# <wal bytes> <rss KiB> <cpu ticks> <commands so far> <database server cpu
# ticks or ->"
samples=$work/samples
: >"$samples"

# The database server's CPU ticks so far (postern_pg), else -.
db_ticks() { if [[ $1 == postern_pg ]]; then pg_cluster_ticks; else echo -; fi; }

soak() { # server
    local s=$1 port pid out=$work/$1.tsv log=$work/$1.imaptest.log start next n=0 line
    local c e m db wal
    if [[ $s == postern* ]]; then port=$POSTERN_PORT pid=$postern_pid; else port=$DOVECOT_PORT pid=$dovecot_master; fi
    say "$s: imaptest, $CLIENTS clients, ${MINUTES} min"
    echo "$s 0 - - - - - - $(cpu_tree "$pid") 0 $(db_ticks "$s")" >>"$samples"
    # shellcheck disable=SC2086 # IMAPTEST_ARGS is a list of words on purpose
    "$IMAPTEST" host=127.0.0.1 port="$port" user="$user" pass="$password" \
        mbox="$work/soak.mbox" clients="$CLIENTS" msgs="$MSGS" seed="$SEED" \
        logout=0 secs="$((secs + 5))" output="$out" $IMAPTEST_ARGS \
        >"$log" 2>&1 </dev/null &
    load_pid=$!
    start=$(date +%s)
    while :; do
        next=$((start + (n + 1) * SAMPLE_SECS))
        while (($(date +%s) < next)); do
            kill -0 "$load_pid" 2>/dev/null || break 2
            sleep 1
        done
        n=$((n + 1))
        if [[ $s == postern* ]]; then
            line=$("${s}_sample") || line="- - - 0 0"
            read -r c e m db wal <<<"$line"
        else
            c=- e=- m=- db=$(du -sb "$work/dovecot/mail" 2>/dev/null | cut -f1 || true) wal=-
        fi
        echo "$s $n $c $e $m $db $wal $(rss_tree "$pid") $(cpu_tree "$pid") $(commands_so_far "$out") $(db_ticks "$s")" >>"$samples"
        say "$s: row $n: $(tail -n 1 "$samples" | cut -d' ' -f3-)"
        ((n < MINUTES * 60 / SAMPLE_SECS)) || break
    done
    # imaptest runs a few seconds past the last row (so that row is taken
    # under load) and ends by itself; then it is stopped for sure.
    local i
    for ((i = 0; i < 300; i++)); do
        kill -0 "$load_pid" 2>/dev/null || break
        sleep 0.1
    done
    stop_load
    [[ -s $out ]] || { tail -n 20 "$log" >&2; die "$s: imaptest wrote no results"; }
}

# --- main -----------------------------------------------------------------------

say "work dir: $work; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
for s in "${servers[@]}"; do
    "${s}_setup"
    soak "$s"
    "stop_$s"
done

# Per-interval rates from imaptest's per-second rows: the first line names
# the columns, each row has three numbers per command (count, timed count,
# msecs); the counts are every third.
rates() { # server
    awk -F'\t' -v per="$SAMPLE_SECS" '
        NR == 1 { next }
        { s = 0; for (i = 1; i <= NF; i += 3) s += $i; b = int((NR - 2) / per) + 1; sum[b] += s; rows[b]++; if (b > max) max = b }
        END { for (b = 1; b <= max; b++) if (rows[b] >= per / 2) printf "%d %.0f\n", b, sum[b] / rows[b] }
    ' "$work/$1.tsv"
}
for s in "${servers[@]}"; do rates "$s" >"$work/$s.rates"; done

value() { # server row column(3..10) -> sample value
    awk -v s="$1" -v n="$2" -v c="$3" '$1 == s && $2 == n { print $c; f = 1 } END { if (!f) print "-" }' "$samples"
}
rate() { # server row
    [[ -f $work/$1.rates ]] || { echo "-"; return; }
    awk -v n="$2" '$1 == n { print $2; f = 1 } END { if (!f) print "-" }' "$work/$1.rates"
}
# The server's CPU milliseconds per 1,000 commands in a row: less swayed
# than the rate by whatever else the machine runs.
cpu_per_k() { # server row [column: 9 the server, 11 its database server]
    awk -v s="$1" -v n="$2" -v col="${3:-9}" -v hz="$(getconf CLK_TCK)" '
        $1 == s && $2 == n - 1 { t0 = $col; c0 = $10 }
        $1 == s && $2 == n { t1 = $col; c1 = $10; f = 1 }
        END { if (!f || c1 - c0 <= 0 || t1 == "-") print "-"; else printf "%.0f", (t1 - t0) * 1000 / hz * 1000 / (c1 - c0) }
    ' "$samples"
}
mib() { [[ $1 =~ ^[0-9]+$ ]] && awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }' || echo "-"; }
kib_mib() { [[ $1 =~ ^[0-9]+$ ]] && awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }' || echo "-"; }

rows=$((MINUTES * 60 / SAMPLE_SECS))
echo
echo "imaptest steady mix (logout=0 $IMAPTEST_ARGS), $CLIENTS clients, msgs=$MSGS, seed $SEED; ${MINUTES} min per server, one after the other"
echo "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) CPUs; rows every ${SAMPLE_SECS}s; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "P = Postern (imapd), D = Dovecot; cmd/s = imaptest's commands per second; CPU = the"
echo "server's CPU ms per 1,000 commands; changes, tombst., msgs, sizes at the row's end; MiB"
fmt='| %3s | %7s | %5s | %9s | %7s | %4s | %6s | %7s | %4s || %7s | %5s | %8s | %4s |\n'
# shellcheck disable=SC2059 # the format is ours
printf "$fmt" row "P cmd/s" "P CPU" changes tombst. msgs "P DB" "P WAL" "RSS" "D cmd/s" "D CPU" "D disk" "RSS"
echo "|-----|---------|-------|-----------|---------|------|--------|---------|------||---------|-------|----------|------|"
for ((n = 1; n <= rows; n++)); do
    # shellcheck disable=SC2059
    printf "$fmt" "$n" \
        "$(rate postern "$n")" "$(cpu_per_k postern "$n")" "$(value postern "$n" 3)" \
        "$(value postern "$n" 4)" "$(value postern "$n" 5)" "$(mib "$(value postern "$n" 6)")" \
        "$(mib "$(value postern "$n" 7)")" "$(kib_mib "$(value postern "$n" 8)")" \
        "$(rate dovecot "$n")" "$(cpu_per_k dovecot "$n")" "$(mib "$(value dovecot "$n" 6)")" \
        "$(kib_mib "$(value dovecot "$n" 8)")"
done
if want postern_pg; then
    echo
    echo "Postern with its store in PostgreSQL (PG CPU: the database server's CPU ms per 1,000 commands)"
    pfmt='| %3s | %7s | %5s | %6s | %9s | %7s | %4s | %6s | %4s |\n'
    # shellcheck disable=SC2059
    printf "$pfmt" row "P cmd/s" "P CPU" "PG CPU" changes tombst. msgs "PG DB" "RSS"
    echo "|-----|---------|-------|--------|-----------|---------|------|--------|------|"
    for ((n = 1; n <= rows; n++)); do
        # shellcheck disable=SC2059
        printf "$pfmt" "$n" \
            "$(rate postern_pg "$n")" "$(cpu_per_k postern_pg "$n")" "$(cpu_per_k postern_pg "$n" 11)" \
            "$(value postern_pg "$n" 3)" "$(value postern_pg "$n" 4)" "$(value postern_pg "$n" 5)" \
            "$(mib "$(value postern_pg "$n" 6)")" "$(kib_mib "$(value postern_pg "$n" 8)")"
    done
fi
echo
for s in "${servers[@]}"; do
    first=$(rate "$s" 1) last=$(rate "$s" "$rows")
    change=$(awk -v a="$first" -v b="$last" 'BEGIN { if (a + 0 == 0 || b == "-") print "-"; else printf "%+.1f %%", (b - a) * 100 / a }')
    cfirst=$(cpu_per_k "$s" 1) clast=$(cpu_per_k "$s" "$rows")
    db=""
    [[ $s != postern_pg ]] || db=" (PostgreSQL server besides: $(cpu_per_k "$s" 1 11) ms, then $(cpu_per_k "$s" "$rows" 11) ms)"
    errors=$(grep -c 'Error:' "$work/$s.imaptest.log" || true)
    echo "$s: ${first} cmd/s in the first row, ${last} in the last ($change); CPU per 1,000 commands ${cfirst} ms, then ${clast} ms$db; imaptest errors: $errors"
    if ((errors > 0)); then grep -m 5 'Error:' "$work/$s.imaptest.log" | sed 's/^/    /'; fi
done
