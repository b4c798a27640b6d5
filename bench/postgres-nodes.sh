#!/usr/bin/env bash
# SMTP accept throughput with the store in PostgreSQL: one `postern up`
# node against two nodes over the same database, on this machine.
#
# A benchmark, run by hand; never in CI. Needs Postfix's smtp-source
# (apt-get install postfix) and PostgreSQL's server (apt-get install
# postgresql); as root it runs the private cluster as the postgres user.
# Everything binds 127.0.0.1 and every wait has a time limit.
#
#   bench/postgres-nodes.sh [--sessions N] [--messages N] [--repeat N]
#
#   SESSIONS=20        SMTP sessions in all (split evenly over the nodes)
#   MESSAGES=5000      messages in all
#   SIZE_KB=4          message body size
#   REPEAT=3           runs of each setup; medians are shown
#   POSTERN_BIN=target/release/postern
#   TMPDIR             where the temp dir goes
#
# Figures: accepted msgs/s = MESSAGES / wall time until every smtp-source
# finished (each gets 250 only once the transaction is committed in
# PostgreSQL); CPU ms/1000 msgs of each Postern node and of the PostgreSQL
# server (all its processes), from /proc. Each run gets a new database.

set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
SESSIONS=${SESSIONS:-20}
MESSAGES=${MESSAGES:-5000}
SIZE_KB=${SIZE_KB:-4}
REPEAT=${REPEAT:-3}
POSTERN_BIN=${POSTERN_BIN:-$repo/target/release/postern}
for v in $(compgen -e POSTERN_); do export -n "$v"; done
while (($#)); do
    case $1 in
        -s | --sessions) SESSIONS=$2; shift 2 ;;
        -m | --messages) MESSAGES=$2; shift 2 ;;
        -r | --repeat) REPEAT=$2; shift 2 ;;
        -h | --help) sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "postgres-nodes: unknown argument $1" >&2; exit 64 ;;
    esac
done
die() { echo "postgres-nodes: $*" >&2; exit 1; }
say() { echo "postgres-nodes: $*" >&2; }
export PATH=$PATH:/usr/sbin:/sbin
command -v smtp-source >/dev/null || die "smtp-source not found (apt-get install postfix)"
[[ -x $POSTERN_BIN ]] || (cd "$repo" && cargo build --release -p postern) || die "cannot build postern"

work=$(mktemp -d "${TMPDIR:-/tmp}/postern-pgbench.XXXXXX")
chmod 755 "$work"
# shellcheck source=bench/lib/pg-cluster.sh
source "$here/lib/pg-cluster.sh"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
nodes=()
cleanup() {
    set +e
    local pid
    for pid in "${nodes[@]}"; do kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    pg_cluster_stop
    rm -rf "$work"
}
trap cleanup EXIT
pg_cluster_start "$work/pg" || die "no private PostgreSQL cluster"

clk_tck=$(getconf CLK_TCK)
# CPU ticks of a process and its reaped children.
ticks_of() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

results=$work/results
: >"$results"
size=$((SIZE_KB * 1024))

run() { # nodes run
    local n=$1 r=$2 db="bench_${1}_$2" i
    pg_cluster_createdb "$db" || die "createdb"
    local url
    url=$(pg_cluster_url "$db")
    printf 'bench-password\n' | env POSTERN_STORE_BACKEND=postgres "POSTERN_STORE_URL=$url" \
        "$POSTERN_BIN" --data-dir "$work/n0.$db" user add bench@localhost --password-stdin >/dev/null
    local ports=()
    nodes=()
    for ((i = 0; i < n; i++)); do
        local port
        port=$(free_port)
        ports+=("$port")
        mkdir -p "$work/n$i.$db"
        cat >"$work/n$i.$db.toml" <<EOF
log = "warn"
[smtp]
listen = ["127.0.0.1:$port"]
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
[store]
backend = "postgres"
url = "$url"
EOF
        "$POSTERN_BIN" --data-dir "$work/n$i.$db" --config "$work/n$i.$db.toml" up >"$work/n$i.$db.out" 2>&1 &
        nodes+=("$!")
    done
    for ((i = 0; i < n; i++)); do
        local t
        for ((t = 0; t < 300; t++)); do
            grep -q '^postern: ready' "$work/n$i.$db.out" && break
            sleep 0.1
        done
        ((t < 300)) || { cat "$work/n$i.$db.out" >&2; die "node $i did not start"; }
    done
    local before_pg before_nodes=0 pid
    before_pg=$(pg_cluster_ticks)
    for pid in "${nodes[@]}"; do before_nodes=$((before_nodes + $(ticks_of "$pid"))); done
    local start end
    start=$EPOCHREALTIME
    local loads=()
    for ((i = 0; i < n; i++)); do
        timeout 600 smtp-source -c -d -s $((SESSIONS / n)) -m $((MESSAGES / n)) -l "$size" \
            -f bench@example.org -t bench@localhost "127.0.0.1:${ports[$i]}" >/dev/null &
        loads+=("$!")
    done
    for pid in "${loads[@]}"; do wait "$pid" || die "smtp-source failed"; done
    end=$EPOCHREALTIME
    local after_nodes=0
    for pid in "${nodes[@]}"; do after_nodes=$((after_nodes + $(ticks_of "$pid"))); done
    local after_pg
    after_pg=$(pg_cluster_ticks)
    local got
    got=$(pg_cluster_psql "$db" "SELECT count(*) FROM messages")
    ((got == MESSAGES / n * n)) || say "warning: $got messages stored, expected $((MESSAGES / n * n))"
    awk -v n="$n" -v m="$((MESSAGES / n * n))" -v a="$start" -v b="$end" -v pn="$((after_nodes - before_nodes))" \
        -v pp="$((after_pg - before_pg))" -v hz="$clk_tck" \
        'BEGIN { printf "%d %.1f %.0f %.0f\n", n, m / (b - a), pn * 1e6 / hz / m, pp * 1e6 / hz / m }' >>"$results"
    for pid in "${nodes[@]}"; do kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; done
    nodes=()
}

say "load: $SESSIONS sessions x $MESSAGES msgs x $SIZE_KB KiB, repeat $REPEAT; load average $(cut -d' ' -f1 /proc/loadavg)"
for ((r = 1; r <= REPEAT; r++)); do
    run 1 "$r"
    run 2 "$r"
done
median() { # nodes column
    awk -v n="$1" -v c="$2" '$1 == n { v[k++] = $c } END {
        for (i = 0; i < k; i++) for (j = i + 1; j < k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        printf "%s", (k % 2) ? v[int(k / 2)] : (v[k / 2 - 1] + v[k / 2]) / 2 }' "$results"
}
echo
echo "Postern on PostgreSQL $(pg_cluster_version), $SESSIONS sessions x $MESSAGES msgs x $SIZE_KB KiB, median of $REPEAT"
printf '%-26s %10s %10s\n' "" "1 node" "2 nodes"
printf '%-26s %10s %10s\n' "accepted msgs/s" "$(median 1 2)" "$(median 2 2)"
printf '%-26s %10s %10s\n' "Postern CPU us/msg (all)" "$(median 1 3)" "$(median 2 3)"
printf '%-26s %10s %10s\n' "PostgreSQL CPU us/msg" "$(median 1 4)" "$(median 2 4)"
echo "machine: $(nproc) cpus, load average now $(cut -d' ' -f1 /proc/loadavg)"
