#!/usr/bin/env bash
# Staff workspace benchmark: the queue with 1 000 000 requests, and /healthz
# while 50 staff logins (argon2) run at once. See bench/README.md.
#
#   bash bench/staff.sh [--no-build] [--backend sqlite|postgres|all]
#                       [--rows 1000000] [--duration 10s] [--bin PATH] [--port 18182]
#
# Prints a Markdown table; raw wrk output and server logs go to
# bench/results/staff-<timestamp>/ (git-ignored). Targets (queue < 20 ms,
# /healthz p99 < 5 ms during the login storm) are reported, not enforced.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

BUILD=1
BACKENDS=all
ROWS=1000000
DURATION=10s
PORT=18182
BIN="$ROOT/target/release/privacy-portal"
PG_HOST=127.0.0.1
PG_PORT=5432

while (($#)); do
    case "$1" in
        --no-build) BUILD=0 ;;
        --backend) BACKENDS=${2:?}; shift ;;
        --rows) ROWS=${2:?}; shift ;;
        --duration) DURATION=${2:?}; shift ;;
        --port) PORT=${2:?}; shift ;;
        --bin) BIN=${2:?}; BUILD=0; shift ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done
if ((BUILD)); then
    cargo build --release
fi
[[ -x "$BIN" ]] || { echo "no binary at $BIN (build with cargo build --release)" >&2; exit 2; }

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/bench/results/staff-$STAMP"
mkdir -p "$OUT"
TMP=$(mktemp -d)
SERVER_PID=""
PG_DB=""
cleanup() {
    [[ -n "$SERVER_PID" ]] && kill -9 "$SERVER_PID" 2>/dev/null || true
    if [[ -n "$PG_DB" ]]; then
        psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres \
            -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" </dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

BASE="http://127.0.0.1:$PORT"
SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')

# Runs the binary with a clean environment. `exec` so that a backgrounded
# call's $! is the server itself (killing a subshell would orphan it).
run_env() {
    exec env -i PATH="$PATH" HOME="$HOME" \
        PORTAL_DATABASE_URL="$DB_URL" PORTAL_BIND="127.0.0.1:$PORT" PORTAL_BASE_URL="$BASE" \
        PORTAL_SECRET_KEY="$SECRET" PORTAL_SMTP_URL="smtp://127.0.0.1:1" \
        PORTAL_MAIL_FROM="privacy@example.test" PORTAL_CLIENT_RATE_LIMIT=0 RUST_LOG=warn "$@"
}

# 1 000 000 requests: 2 % open (half escalated, half processing), the rest
# closed; kinds spread evenly; due dates spread over ±60 days so that some
# open cases are overdue.
fill_sql() {
    local series=$1 hex=$2 day=$3
    cat <<SQL
INSERT INTO requests (id, kind, locale, email, email_hash, status, channel, received_at, verified_at,
  paused_seconds, extension_months, due_date, due_at, reasons, data, outcome, closed_at, updated_at)
SELECT id, kind, 'en', 'bench-' || i || '@example.test', 'h' || i, status, 'portal',
  due_at - 2678400, due_at - 2678400, 0, 0, ${day}, due_at, '[]', '{}',
  CASE WHEN status = 'completed' THEN 'answered' END,
  CASE WHEN status = 'completed' THEN due_at - 86400 END, due_at
FROM (SELECT i,
  ${hex} AS id,
  CASE i % 5 WHEN 0 THEN 'export' WHEN 1 THEN 'delete' WHEN 2 THEN 'change_email' WHEN 3 THEN 'object' ELSE 'question' END AS kind,
  CASE (i / 5) % 100 WHEN 0 THEN 'escalated' WHEN 1 THEN 'processing' ELSE 'completed' END AS status,
  $(date +%s) - 5184000 + (i * 7919) % 10368000 AS due_at
  FROM ${series}) s;
SQL
}

measure() { # name url -> "p50 p99" in ms
    local name=$1 url=$2
    wrk -t1 -c1 -d"$DURATION" --latency -H "Cookie: $COOKIE" "$url" >"$OUT/$BACKEND-$name.txt" 2>&1
    awk '/^ +50%/{p50=$2} /^ +99%/{p99=$2} END{print p50, p99}' "$OUT/$BACKEND-$name.txt"
}

to_ms() { # "1.23ms" | "850.00us" | "1.10s" -> ms
    awk -v v="$1" 'BEGIN{ n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) ; else if (v ~ /s$/) n*=1000; printf "%.2f", n }'
}

ROWS_OUT=()
for BACKEND in sqlite postgres; do
    [[ "$BACKENDS" == all || "$BACKENDS" == "$BACKEND" ]] || continue
    echo "== $BACKEND: $ROWS requests =="
    if [[ $BACKEND == sqlite ]]; then
        DB_URL="sqlite://$TMP/staff-bench.db"
        (run_env "$BIN" migrate >/dev/null)
        SECONDS=0
        sqlite3 "$TMP/staff-bench.db" "$(fill_sql "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $ROWS) SELECT i FROM n)" \
            "printf('%08x-0000-4000-8000-%012x', i, i)" "date(due_at, 'unixepoch')"); ANALYZE;"
    else
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" || { echo "PostgreSQL not running" >&2; exit 2; }
        PG_DB="portal_bench_staff_$$"
        psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -c "CREATE DATABASE \"$PG_DB\"" </dev/null
        DB_URL="postgres://postgres@$PG_HOST:$PG_PORT/$PG_DB"
        (run_env "$BIN" migrate >/dev/null)
        SECONDS=0
        psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d "$PG_DB" -v ON_ERROR_STOP=1 </dev/null \
            -c "$(fill_sql "generate_series(1::bigint, $ROWS::bigint) AS g(i)" \
                "lpad(to_hex(i), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i), 12, '0')" \
                "to_char(to_timestamp(due_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')")" -c "VACUUM ANALYZE requests"
    fi
    echo "filled in ${SECONDS}s"

    (run_env "$BIN" serve >"$OUT/$BACKEND-server.log" 2>&1) &
    SERVER_PID=$!
    for _ in $(seq 1 60); do
        curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break
        sleep 1
    done
    curl -fsS "$BASE/readyz" >/dev/null

    LINK=$( (run_env "$BIN" staff add bench-admin@example.test --role admin) | tail -1)
    COOKIE=$(python3 "$ROOT/bench/staff_login.py" enrol "$BASE" "$LINK" bench-admin@example.test "bench password 1234")
    (run_env "$BIN" staff add bench-storm@example.test --role agent >/dev/null)

    read -r q50 q99 < <(measure queue "$BASE/staff/")
    read -r f50 f99 < <(measure filtered "$BASE/staff/?kind=delete&status=escalated&overdue=1")

    # /healthz while 50 logins run at once (each one argon2 verification).
    python3 "$ROOT/bench/staff_login.py" storm "$BASE" bench-storm@example.test 14 50 >"$OUT/$BACKEND-storm.txt" &
    STORM=$!
    sleep 2
    wrk -t1 -c4 -d"$DURATION" --latency "$BASE/healthz" >"$OUT/$BACKEND-healthz.txt" 2>&1
    wait "$STORM"
    read -r h50 h99 < <(awk '/^ +50%/{p50=$2} /^ +99%/{p99=$2} END{print p50, p99}' "$OUT/$BACKEND-healthz.txt")
    logins=$(awk '{n += $3} END{print n+0}' "$OUT/$BACKEND-storm.txt")

    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    if [[ $BACKEND == postgres ]]; then
        psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" </dev/null
        PG_DB=""
    fi
    verdict() { awk -v v="$(to_ms "$1")" -v t="$2" 'BEGIN{ print (v < t ? "ok" : "MISS") }'; }
    ROWS_OUT+=("| $BACKEND | $(to_ms "$q50") / $(to_ms "$q99") ms $(verdict "$q99" 20) | $(to_ms "$f50") / $(to_ms "$f99") ms $(verdict "$f99" 20) | $(to_ms "$h50") / $(to_ms "$h99") ms $(verdict "$h99" 5) | $logins |")
done

{
    echo "| backend | queue first page p50 / p99 | filtered page p50 / p99 | /healthz p50 / p99 during 50 logins | logins done |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${ROWS_OUT[@]}"
} | tee "$OUT/summary.md"
