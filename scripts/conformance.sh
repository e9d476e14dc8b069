#!/usr/bin/env bash
# RFC 6455 and RFC 7692 conformance with the Autobahn testsuite, both halves, on 127.0.0.1, in
# release builds (sections 1-7, 9, 10, and 12-13: permessage-deflate):
#   - server: the fuzzing client (`wstest -m fuzzingclient`) against the echo example;
#   - client: the fuzzing server (`wstest -m fuzzingserver`) driven by the autobahn_client
#     example (a #[client_endpoint] that echoes every case).
# Installs the testsuite under target/autobahn if missing.
#
#   bash scripts/conformance.sh            # exits non-zero on any FAILED or UNIMPLEMENTED case
#   STRICT=1 bash scripts/conformance.sh   # ... and on any NON-STRICT case
#   SIDES=client bash scripts/conformance.sh   # one half only (default: "server client")
#   CASES='["12.*"]' bash scripts/conformance.sh   # a subset (a JSON list of case patterns)
#   CLIENT_CASES='[...]'                            # the client half's subset (default: CASES)
#
# Per half, the per-section table is printed and written to target/autobahn-run/SIDE/summary.md;
# the full report is target/autobahn-run/SIDE/reports/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=target/autobahn
RUN=target/autobahn-run
PORT=${PORT:-9001}
CLIENT_PORT=${CLIENT_PORT:-9002}
SIDES=${SIDES:-server client}
# Sections 12 and 13 by subsection: the server half runs wstest once per pattern (see below).
CASES=${CASES:-'["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*", "12.1.*", "12.2.*", "12.3.*", "12.4.*", "12.5.*", "13.1.*", "13.2.*", "13.3.*", "13.4.*", "13.5.*", "13.6.*", "13.7.*"]'}
CLIENT_CASES=${CLIENT_CASES:-$CASES}

bash scripts/install-autobahn.sh "$PREFIX"
cargo build --release --example echo --example autobahn_client

wait_port() {
  for _ in $(seq 1 300); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

# Prints the table and the totals of one report; fails on FAILED / UNIMPLEMENTED (and, with
# STRICT=1, NON-STRICT) cases.
verdict() {
  python3 scripts/autobahn-summary.py "$1" | tee "$2"
  python3 - "$1" "${STRICT:-0}" <<'PY'
import json, sys
results = list(json.load(open(sys.argv[1])).values())[0]
strict = sys.argv[2] == "1"
def verdict(r):
    if r["behaviorClose"] in ("FAILED", "WRONG CODE", "UNCLEAN", "FAILED BY CLIENT"):
        return "FAILED"
    return r["behavior"]
count = {}
for r in results.values():
    v = verdict(r)
    count[v] = count.get(v, 0) + 1
bad = count.get("FAILED", 0) + count.get("UNIMPLEMENTED", 0)
if strict:
    bad += count.get("NON-STRICT", 0)
print("cases: %d; %s" % (len(results), ", ".join("%s %d" % kv for kv in sorted(count.items()))))
sys.exit(1 if bad else 0)
PY
}

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
status=0

for side in $SIDES; do
  dir="$RUN/$side"
  rm -rf "$dir" && mkdir -p "$dir"
  case "$side" in
  server)
    echo "== server: wstest's fuzzing client against examples/echo.rs"
    target/release/examples/echo "127.0.0.1:$PORT" >"$dir/server.log" 2>&1 &
    pids+=($!)
    wait_port "$PORT"
    # One wstest run per case pattern, results merged: the fuzzing client (PyPy) keeps what it
    # has seen until it exits; one run over sections 12 and 13 grew past 24 GiB, and so did one
    # over section 12 alone.
    mapfile -t groups < <(python3 -c 'import json, sys; [print(json.dumps([p])) for p in json.loads(sys.argv[1])]' "$CASES")
    n=0
    for group in "${groups[@]}"; do
      n=$((n + 1))
      cat >"$dir/spec-$n.json" <<JSON
{"outdir": "reports-$n",
 "servers": [{"agent": "ws-endpoint", "url": "ws://127.0.0.1:$PORT/"}],
 "cases": $group,
 "exclude-cases": [],
 "exclude-agent-cases": {}}
JSON
      (cd "$dir" && timeout "${WSTEST_TIMEOUT:-2400}" "../../../$PREFIX/wstest" -m fuzzingclient -s "spec-$n.json" >>wstest.log 2>&1) || {
        echo "wstest failed on $group; last lines of its log:" >&2
        tail -20 "$dir/wstest.log" >&2
        exit 1
      }
    done
    mkdir -p "$dir/reports"
    python3 - "$dir" "$n" <<'PY'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
merged = {}
for i in range(1, n + 1):
    for agent, cases in json.load(open("%s/reports-%d/index.json" % (d, i))).items():
        for case, result in cases.items():
            result["reportfile"] = "../reports-%d/%s" % (i, result.get("reportfile", ""))
            merged.setdefault(agent, {})[case] = result
json.dump(merged, open("%s/reports/index.json" % d, "w"))
PY
    ;;
  client)
    echo "== client: examples/autobahn_client.rs against wstest's fuzzing server"
    cat >"$dir/spec.json" <<JSON
{"url": "ws://127.0.0.1:$CLIENT_PORT",
 "outdir": "reports",
 "cases": $CLIENT_CASES,
 "exclude-cases": [],
 "exclude-agent-cases": {}}
JSON
    (cd "$dir" && exec "../../../$PREFIX/wstest" -m fuzzingserver -s spec.json >wstest.log 2>&1) &
    pids+=($!)
    wait_port "$CLIENT_PORT"
    timeout "${WSTEST_TIMEOUT:-2400}" target/release/examples/autobahn_client \
      "ws://127.0.0.1:$CLIENT_PORT" ws-endpoint-client >"$dir/client.log" 2>&1 || {
      echo "autobahn_client failed; last lines of its log:" >&2
      tail -20 "$dir/client.log" >&2
      exit 1
    }
    ;;
  *)
    echo "unknown side $side (server or client)" >&2
    exit 2
    ;;
  esac
  echo "-- $side"
  verdict "$dir/reports/index.json" "$dir/summary.md" || status=1
done
exit $status
