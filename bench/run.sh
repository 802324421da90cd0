#!/usr/bin/env bash
# Intake benchmark: wrk against a release build of `privacy-portal serve` on
# loopback, once per database backend. See bench/README.md.
#
#   bash bench/run.sh [--no-build] [--backend sqlite|postgres|all]
#                     [--duration 20s] [--connections 64] [--threads 2]
#                     [--bin PATH] [--port 18181]
#
# Prints one Markdown table row per backend; raw wrk output and server logs go
# to bench/results/<timestamp>/ (git-ignored). Exit status: 0 when every
# backend ran and passed the durability check, 1 otherwise. Missed throughput
# or latency targets are reported ("MISS") but do not fail the run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

BUILD=1
BACKENDS=all
DURATION=20s
CONNECTIONS=64
THREADS=2
PORT=18181
BIN="$ROOT/target/release/privacy-portal"
READY_WAIT=60        # seconds to wait for GET /readyz == 200
PG_HOST=127.0.0.1
PG_PORT=5432

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
    case "$1" in
        --no-build) BUILD=0 ;;
        --backend) BACKENDS=${2:?}; shift ;;
        --duration) DURATION=${2:?}; shift ;;
        --connections) CONNECTIONS=${2:?}; shift ;;
        --threads) THREADS=${2:?}; shift ;;
        --port) PORT=${2:?}; shift ;;
        --bin) BIN=${2:?}; BUILD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
case "$BACKENDS" in
    all) BACKENDS="sqlite postgres" ;;
    sqlite|postgres) ;;
    *) echo "--backend must be sqlite, postgres or all" >&2; exit 2 ;;
esac
[[ "$BIN" = /* ]] || BIN="$ROOT/$BIN"

BASE="http://127.0.0.1:$PORT"
# wrk's -d accepts 20s / 2m; turn it into seconds to bound each wrk run.
case "$DURATION" in
    *m) DUR_S=$(( ${DURATION%m} * 60 )) ;;
    *s) DUR_S=${DURATION%s} ;;
    *) DUR_S=$DURATION ;;
esac
WRK_TIMEOUT=$((DUR_S + 60))

SUDO=()
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); fi
export DEBIAN_FRONTEND=noninteractive PGCONNECT_TIMEOUT=10

# --- setup -------------------------------------------------------------------
echo "== setup =="
if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk from Debian"
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q wrk </dev/null
fi
command -v curl >/dev/null 2>&1 || { echo "curl is required" >&2; exit 1; }

if ((BUILD)); then
    echo "== cargo build --release =="
    CARGO_TERM_COLOR=never cargo build --release
fi
[[ -x "$BIN" ]] || { echo "no binary at $BIN (build it or drop --no-build)" >&2; exit 1; }

if curl -s -o /dev/null --max-time 2 "$BASE/healthz"; then
    echo "something already answers on $BASE; stop it or pass --port" >&2
    exit 1
fi

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$ROOT/bench/results/$STAMP"
mkdir -p "$RESULTS"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/portal-bench.XXXXXX")
RUN_ID="$(date +%s)$$"
SERVER_PID=""
PG_DB=""

psql_admin() {
    psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres "$@" </dev/null
}

stop_server() {
    # Hard stop on purpose: a 202 must mean "committed", so nothing may depend
    # on a graceful shutdown flushing buffers. The count happens afterwards.
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}

drop_pg_db() {
    if [[ -n "$PG_DB" ]]; then
        psql_admin -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" \
            || echo "warning: could not drop database $PG_DB"
        PG_DB=""
    fi
}

# shellcheck disable=SC2317  # invoked by trap
cleanup() {
    local rc=$?
    stop_server
    drop_pg_db
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

gen_secret() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }

# Environment of the server: nothing inherited but PATH/HOME, so a developer's
# own PORTAL_* settings (connector, config) cannot change what is measured.
server_env() {
    local db_url=$1
    SERVER_ENV=(
        env -i PATH="$PATH" HOME="$HOME"
        PORTAL_DATABASE_URL="$db_url"
        PORTAL_BIND="127.0.0.1:$PORT"
        PORTAL_BASE_URL="$BASE"
        PORTAL_SECRET_KEY="$SECRET"
        PORTAL_SMTP_URL="smtp://127.0.0.1:1"
        PORTAL_MAIL_FROM="privacy@example.test"
        PORTAL_CLIENT_RATE_LIMIT=0
        RUST_LOG=warn
    )
}

wait_ready() {
    local log=$1 i code
    for ((i = 0; i < READY_WAIT * 4; i++)); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "server exited before it was ready; last log lines:" >&2
            tail -n 30 "$log" >&2
            return 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/readyz" || true)
        [[ "$code" == 200 ]] && return 0
        sleep 0.25
    done
    echo "GET /readyz did not answer 200 within ${READY_WAIT}s (last: ${code:-none}); log:" >&2
    tail -n 30 "$log" >&2
    return 1
}

# wrk time ("812.00us", "1.53ms", "2.01s", "1.00m") -> milliseconds
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/)      { sub(/us$/, "", v); printf "%.2f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
        else if (v ~ /m$/)  { sub(/m$/,  "", v); printf "%.0f", v * 60000 }
        else if (v ~ /s$/)  { sub(/s$/,  "", v); printf "%.0f", v * 1000 }
        else                { printf "?" } }'
}
wrk_rps()     { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
wrk_pct()     { awk -v p="$2%" '$1 == p { print $2 }' "$1"; }
wrk_non2xx()  { awk -F': *' '/Non-2xx or 3xx responses/ { n = $2 } END { print n + 0 }' "$1"; }
wrk_total()   { awk '/ requests in / { print $1 }' "$1"; }
wrk_sockerr() { sed -n 's/^ *Socket errors: *//p' "$1"; }
lua_field()   { sed -n "s/.*intake-status.* $2=\([0-9]*\).*/\1/p" "$1"; }

run_wrk() { # out-file url [lua-script [script-arg]]
    local out=$1 url=$2 script=${3:-} arg=${4:-}
    local cmd=(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency)
    [[ -n "$script" ]] && cmd+=(-s "$script")
    cmd+=("$url")
    [[ -n "$arg" ]] && cmd+=(-- "$arg")
    timeout "$WRK_TIMEOUT" "${cmd[@]}" >"$out" 2>&1 || {
        echo "wrk failed (see $out):" >&2
        cat "$out" >&2
        return 1
    }
}

ensure_postgres() {
    command -v psql >/dev/null 2>&1 || { echo "psql not installed"; return 1; }
    if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
        local v
        # shellcheck disable=SC2012  # version directories are plain numbers
        v=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
        [[ -n "$v" ]] || { echo "PostgreSQL not running and no cluster found"; return 1; }
        "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
        for _ in $(seq 1 60); do
            pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break
            sleep 1
        done
    fi
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
}

# --- machine -----------------------------------------------------------------
CPU=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
MACHINE="$(nproc) cores ($CPU), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr)"
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
{
    echo "# intake benchmark $STAMP"
    echo
    echo "- machine: $MACHINE"
    echo "- commit: $REV$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (+ local changes)')"
    echo "- load: wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }') -t$THREADS -c$CONNECTIONS -d$DURATION on the same machine, loopback"
    echo
} >"$RESULTS/summary.md"

HEADER="| backend | /healthz req/s | intake req/s | intake p50 ms | intake p99 ms | intake/healthz | intake non-2xx | 202s | stored | socket errors |"
RULE="|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
ROWS=()
NOTES=()
FAILED=0

bench_backend() {
    local backend=$1 db_url stored
    echo
    echo "== backend: $backend =="
    case "$backend" in
        sqlite)
            db_url="sqlite://$TMP/bench.db"
            ;;
        postgres)
            if ! ensure_postgres; then
                NOTES+=("postgres: skipped (no PostgreSQL on $PG_HOST:$PG_PORT)")
                return 0
            fi
            PG_DB="portal_bench_${RUN_ID}"
            psql_admin -c "CREATE DATABASE \"$PG_DB\"" || return 1
            db_url="postgres://postgres@$PG_HOST:$PG_PORT/$PG_DB"
            ;;
    esac

    SECRET=$(gen_secret)
    server_env "$db_url"
    local log="$RESULTS/server-$backend.log"
    # `migrate` first so the measured server starts on a ready schema
    # (harmless if `serve` migrates too).
    (cd "$TMP" && "${SERVER_ENV[@]}" "$BIN" migrate) >"$log" 2>&1 || {
        echo "migrate failed:" >&2; tail -n 30 "$log" >&2; return 1; }
    (cd "$TMP" && exec "${SERVER_ENV[@]}" "$BIN" serve) >>"$log" 2>&1 &
    SERVER_PID=$!
    wait_ready "$log" || return 1
    echo "server ready (pid $SERVER_PID)"

    # short warm-up on /healthz (not recorded)
    timeout 30 wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$BASE/healthz" >/dev/null 2>&1 || true

    local hz="$RESULTS/wrk-$backend-healthz.txt" in="$RESULTS/wrk-$backend-intake.txt"
    echo "-- wrk /healthz ($DURATION)"
    run_wrk "$hz" "$BASE/healthz" || return 1
    echo "-- wrk POST /api/v1/requests ($DURATION)"
    run_wrk "$in" "$BASE/api/v1/requests" "$ROOT/bench/intake.lua" "$RUN_ID-$backend" || return 1

    stop_server

    local hz_rps in_rps p50 p99 non2xx n202 total sockerr ratio
    hz_rps=$(wrk_rps "$hz")
    in_rps=$(wrk_rps "$in")
    p50=$(to_ms "$(wrk_pct "$in" 50)")
    p99=$(to_ms "$(wrk_pct "$in" 99)")
    non2xx=$(wrk_non2xx "$in")
    total=$(wrk_total "$in")
    n202=$(lua_field "$in" 202)
    [[ -n "$n202" ]] || n202=$((total - non2xx))   # fallback: wrk's own count
    sockerr=$(wrk_sockerr "$in")
    ratio=$(awk -v a="$in_rps" -v b="$hz_rps" 'BEGIN { if (b > 0) printf "%.1f %%", 100 * a / b; else print "?" }')

    # Durability: every 202 must be a stored row, counted after a hard kill.
    case "$backend" in
        sqlite)
            if command -v sqlite3 >/dev/null 2>&1; then
                # The WAL (kept from the killed server) is bounded: the
                # intake writer restarts it at 64 MiB (src/store/writer.rs).
                NOTES+=("sqlite: WAL file after the run: $(( $(stat -c %s "$TMP/bench.db-wal" 2>/dev/null || echo 0) / 1048576 )) MiB")
                stored=$(sqlite3 "$TMP/bench.db" 'select count(*) from requests' 2>&1) || stored="error: $stored"
                local integrity
                integrity=$(sqlite3 "$TMP/bench.db" 'pragma quick_check' 2>&1 | head -1)
                if [[ "$integrity" != ok ]]; then
                    NOTES+=("sqlite: DATABASE DAMAGED after the hard stop: $integrity")
                    FAILED=1
                fi
            else
                stored="n/a"
                NOTES+=("sqlite: stored rows not counted (sqlite3 CLI not installed)")
            fi
            ;;
        postgres)
            stored=$(psql -X -At -h "$PG_HOST" -p "$PG_PORT" -U postgres -d "$PG_DB" \
                -c 'select count(*) from requests' </dev/null 2>&1) || stored="error: $stored"
            drop_pg_db
            ;;
    esac
    if [[ "$stored" =~ ^[0-9]+$ ]]; then
        if ((stored < n202)); then
            NOTES+=("$backend: DURABILITY FAILURE: $n202 requests answered 202 but only $stored rows stored")
            FAILED=1
        fi
    elif [[ "$stored" != "n/a" ]]; then
        NOTES+=("$backend: could not count stored requests: $stored")
        FAILED=1
    fi

    local row="| $backend | $hz_rps | $in_rps | $p50 | $p99 | $ratio | $non2xx | $n202 | $stored | ${sockerr:-none} |"
    ROWS+=("$row")
    echo "$row"
    grep -h 'intake-status' "$in" || true

    # Targets (reported, not enforced).
    local min_rps=2500
    [[ "$backend" == postgres ]] && min_rps=1300
    local verdict
    verdict=$(awk -v r="$in_rps" -v p="$p99" -v h="$hz_rps" -v m="$min_rps" -v b="$backend" 'BEGIN {
        ok = 1; s = ""
        if (r + 0 < m) { ok = 0; s = s sprintf(" intake %s < %d req/s;", r, m) }
        if (p == "?" || p + 0 >= 20) { ok = 0; s = s sprintf(" p99 %s ms >= 20 ms;", p) }
        if (h + 0 <= 0 || r / h < 0.25) { ok = 0; s = s " intake < 25% of /healthz;" }
        if (ok) printf "%s: targets met", b; else printf "%s: MISS:%s", b, s }')
    NOTES+=("$verdict")
    if ((non2xx > 0)); then
        NOTES+=("$backend: $non2xx non-2xx intake responses ($(grep -h -o 'intake-status.*' "$in" || echo 'see wrk output'))")
    fi
}

for b in $BACKENDS; do
    if ! bench_backend "$b"; then
        NOTES+=("$b: run failed (see $RESULTS/)")
        FAILED=1
        stop_server
        drop_pg_db
    fi
done

{
    echo "$HEADER"
    echo "$RULE"
    printf '%s\n' "${ROWS[@]}"
    echo
    printf -- '- %s\n' "${NOTES[@]}"
} >>"$RESULTS/summary.md"

echo
cat "$RESULTS/summary.md"
echo
echo "raw output: $RESULTS/"
exit "$FAILED"
