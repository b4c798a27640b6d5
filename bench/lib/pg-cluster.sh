# A private PostgreSQL cluster for the benchmarks and .ci/run (sourced,
# not run):
# initdb in a directory of the caller's, started on a free port of
# 127.0.0.1 (as the postgres user when run as root: the server refuses
# root), trusting local connections; never the system's own cluster.
#
#   pg_cluster_start DIR [SETTING...]   initdb DIR/data and start it; each
#                                       SETTING (name=value) is passed as -c.
#                                       Sets pg_bin, pg_port, pg_data, pg_pid.
#   pg_cluster_createdb NAME            a new database
#   pg_cluster_url NAME                 its key=value connection string
#   pg_cluster_psql NAME SQL            one query, unaligned tuples only
#   pg_cluster_ticks                    CPU clock ticks of the server so far
#                                       (postmaster and its backends, those
#                                       ended included)
#   pg_cluster_version                  the server's version
#   pg_cluster_stop                     stop it (fast); safe to call twice
#
# Every function returns non-zero with a message on stderr when it fails.

pg_bin="" pg_port="" pg_data="" pg_pid="" pg_as=()

pg_cluster_start() {
    local dir=$1 options setting
    shift
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -x $pg_bin/postgres ]] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; return 1; }
    mkdir -p "$dir"
    chmod 755 "$dir"
    pg_as=()
    if ((EUID == 0)); then
        chown postgres "$dir"
        pg_as=(runuser -u postgres --)
    fi
    pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${pg_as[@]}" "$pg_bin/initdb" -A trust -U postgres -D "$dir/data" >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; echo "initdb failed" >&2; return 1; }
    pg_data=$dir/data
    options="-p $pg_port -k $dir -c listen_addresses=127.0.0.1"
    for setting in "$@"; do options+=" -c $setting"; done
    "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -l "$dir/log" -w -o "$options" start >/dev/null ||
        { cat "$dir/log" >&2; echo "PostgreSQL did not start" >&2; pg_data=""; return 1; }
    pg_pid=$(head -n 1 "$pg_data/postmaster.pid")
}

pg_cluster_url() { echo "host=127.0.0.1 port=$pg_port user=postgres dbname=$1"; }

pg_cluster_psql() {
    psql -X -q -At -h 127.0.0.1 -p "$pg_port" -U postgres -d "$1" -c "$2"
}

pg_cluster_createdb() { pg_cluster_psql postgres "CREATE DATABASE $1"; }

pg_cluster_ticks() {
    local sum=0 pid t
    for pid in "$pg_pid" $(pgrep -P "$pg_pid"); do
        t=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }')
        sum=$((sum + ${t:-0}))
    done
    echo "$sum"
}

pg_cluster_version() { "$pg_bin/postgres" --version | awk '{ print $3 }'; }

pg_cluster_stop() {
    [[ -n $pg_data ]] || return 0
    "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null 2>&1
    pg_data=""
}
