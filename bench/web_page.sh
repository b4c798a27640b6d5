#!/usr/bin/env bash
# The web page with a big mailbox: a fresh `postern up --capture` gets
# MESSAGES messages for one address over SMTP (Postfix's smtp-source),
# then headless Chromium (tests/browser/perf.mjs) measures, for the
# fixture view and for webmail (that address's login): first paint, the
# first list shown, and the time to open a message, as medians of
# several page loads and opens.
#
# A benchmark, run by hand; never in CI. Needs chromium, smtp-source
# (postfix, in /usr/sbin), curl, python3 and `npm ci` in tests/browser.
# Binds 127.0.0.1:PORT_BASE..PORT_BASE+7 only; every wait is bounded.
#
#   bench/web_page.sh
#
# Settings (environment):
#   MESSAGES=10000   messages in the mailbox
#   SIZE=1500        smtp-source payload bytes (-l)
#   LOADS=5          page loads measured per view
#   OPENS=9          message opens measured per view
#   PORT_BASE=22900  first of the eight ports used
#   POSTERN_BIN      default $CARGO_TARGET_DIR/release/postern (target/
#                    when CARGO_TARGET_DIR is unset); built with
#                    `cargo build --release -p postern` if missing
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
messages="${MESSAGES:-10000}"
size="${SIZE:-1500}"
base="${PORT_BASE:-22900}"
postern="${POSTERN_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/postern}"
for v in $(compgen -e POSTERN_); do export -n "$v"; done # the daemons would read them as configuration
export LOADS="${LOADS:-5}" OPENS="${OPENS:-9}"
export PATH="$PATH:/usr/sbin"

for tool in node curl python3 smtp-source; do
    command -v "$tool" >/dev/null || { echo "web_page.sh: $tool is missing" >&2; exit 1; }
done
[ -d "$repo/tests/browser/node_modules/playwright-core" ] ||
    { echo "web_page.sh: run npm ci in tests/browser first" >&2; exit 1; }
if [ ! -x "$postern" ]; then
    (cd "$repo" && cargo build --release -p postern)
fi

work="$(mktemp -d)"
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
http="127.0.0.1:$((base + 7))"
cat > "$work/postern.toml" <<TOML
log = "warn"
[smtp]
listen = ["127.0.0.1:$base"]
submission_listen = ["127.0.0.1:$((base + 1))"]
submissions_listen = ["127.0.0.1:$((base + 2))"]
[pop3]
listen = ["127.0.0.1:$((base + 3))"]
pop3s_listen = ["127.0.0.1:$((base + 4))"]
[imap]
listen = ["127.0.0.1:$((base + 5))"]
imaps_listen = ["127.0.0.1:$((base + 6))"]
[http]
listen = ["$http"]
[capture]
password = "perf-password"
TOML
"$postern" --config "$work/postern.toml" --data-dir "$work/data" up --capture > "$work/up.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q "postern: ready" "$work/up.log" && break; sleep 0.1; done
grep -q "postern: ready" "$work/up.log" || { cat "$work/up.log" >&2; exit 1; }

total() {
    curl -sf "http://$http/api/v1/messages?limit=1" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["total"])'
}
start=$(date +%s)
timeout 900 smtp-source -s 8 -m "$messages" -l "$size" -S "Load test message" \
    -f load@example.org -t inbox@example.com "127.0.0.1:$base"
deadline=$(( $(date +%s) + 120 ))
until [ "$(total)" -ge "$messages" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "web_page.sh: only $(total) listed" >&2; exit 1; }
    sleep 0.5
done
echo "loaded $messages messages in $(( $(date +%s) - start )) s; $(nproc) cores; $("$postern" --version 2>/dev/null || echo postern)"
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo '?'); node $(node --version)"
cd "$repo/tests/browser"
node perf.mjs "http://$http"
node perf.mjs "http://$http" inbox@example.com perf-password
