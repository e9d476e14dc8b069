#!/usr/bin/env bash
# RFC 6455 and RFC 7692 conformance: runs the Autobahn testsuite's fuzzing client (sections
# 1-7, 9, 10, and 12-13: permessage-deflate) against the echo example built in release, on
# 127.0.0.1. Installs the testsuite under target/autobahn if missing.
#
#   bash scripts/conformance.sh            # exits non-zero on any FAILED or UNIMPLEMENTED case
#   STRICT=1 bash scripts/conformance.sh   # ... and on any NON-STRICT case
#
# The per-section table is printed and written to target/autobahn-run/summary.md; the full
# report is target/autobahn-run/reports/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=target/autobahn
RUN=target/autobahn-run
PORT=${PORT:-9001}

bash scripts/install-autobahn.sh "$PREFIX"
cargo build --release --example echo

rm -rf "$RUN" && mkdir -p "$RUN"
target/release/examples/echo "127.0.0.1:$PORT" >"$RUN/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then
    break
  fi
  sleep 0.1
done

# Every section by default; CASES='["12.*"]' runs a subset (a JSON list of case patterns).
CASES=${CASES:-'["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*", "12.*", "13.*"]'}
cat >"$RUN/spec.json" <<JSON
{"outdir": "reports",
 "servers": [{"agent": "ws-endpoint", "url": "ws://127.0.0.1:$PORT/"}],
 "cases": $CASES,
 "exclude-cases": [],
 "exclude-agent-cases": {}}
JSON

(cd "$RUN" && timeout ${WSTEST_TIMEOUT:-2400} "../../$PREFIX/wstest" -m fuzzingclient -s spec.json >wstest.log 2>&1) || {
  echo "wstest failed; last lines of its log:" >&2
  tail -20 "$RUN/wstest.log" >&2
  exit 1
}

python3 scripts/autobahn-summary.py "$RUN/reports/index.json" | tee "$RUN/summary.md"

python3 - "$RUN/reports/index.json" "${STRICT:-0}" <<'PY'
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
