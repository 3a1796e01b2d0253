#!/usr/bin/env bash
# Soak test of the reference server (a documented command, not part of `cargo test`):
# one `streaming-server serve` process, and `streaming-server simulate` in another process so
# the server's resident memory is its own. It churns about 100,000 streams (30% aborted with a
# reset, 30% resumed with Last-Event-ID), then checks that
#   - every connection-scoped leakwatch count, tokio's alive tasks and the server's sockets
#     are exactly back at the warmed-up baseline,
#   - resident memory is within 10% of its warmed-up value,
#   - the watchdog raised no alert (its recording holds no alert line),
#   - the simulator saw no violation.
# Loopback only; bounded by SOAK_DURATION (default 10m) plus a 90 s warm-up.
#
#   bash scripts/soak.sh                       # ~12 minutes
#   SOAK_DURATION=2m SOAK_CLIENTS=500 bash scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${SOAK_DURATION:-10m}
CLIENTS=${SOAK_CLIENTS:-1000}
LIFETIME=${SOAK_LIFETIME:-5s}
RATE=${SOAK_CONNECT_RATE:-400}

cargo build --release -q -p streaming-server
BIN=target/release/streaming-server
DIR=$(mktemp -d /tmp/leakwatch-soak.XXXXXX)
echo "soak: working in $DIR"

"$BIN" fixture --users 1000 --flows 50 --seed 3 > "$DIR/fx.json"
# A short history (20 events per flow) is full after the warm-up, so the memory compared
# afterwards is not still growing towards its bound.
"$BIN" serve --addr 127.0.0.1:0 --fixture "$DIR/fx.json" --history 20 --record "$DIR/recording.jsonl" \
  > "$DIR/serve.out" 2> "$DIR/serve.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q "listening on" "$DIR/serve.out" 2>/dev/null && break
  sleep 0.1
done
ADDR=$(sed -n 's/^listening on http:\/\///p' "$DIR/serve.out")
[ -n "$ADDR" ] || { echo "soak: the server did not start" >&2; cat "$DIR/serve.log" >&2; exit 1; }
echo "soak: server $ADDR (pid $PID)"

rss() { awk '/^VmRSS/ {print $2 * 1024}' "/proc/$PID/status"; }
# Connection-scoped counts: every series that counts live items (not event counters).
counts() {
  curl -s "http://$ADDR/debug/leakwatch" | python3 -c '
import json, sys
snap = json.load(sys.stdin)
for s in snap["series"]:
    if s["kind"] != "counter":
        print(s["name"], s["live"])'
}
sim() {
  "$BIN" simulate --target "http://$ADDR" --fixture "$DIR/fx.json" --clients "$CLIENTS" \
    --lifetime "$LIFETIME" --connect-rate "$RATE" --abort-fraction 0.3 --resume-fraction 0.3 \
    --seed 11 --json "$@"
}
# Longer than the socket gauge's cache period (5 s), so the counts compared are read afresh.
settle() { sleep 7; }

echo "soak: warm-up (90 s)"
sim --duration 90s > "$DIR/warmup.json"
settle
counts > "$DIR/baseline.txt"
RSS_WARM=$(rss)

echo "soak: churn for $DURATION"
sim --duration "$DURATION" > "$DIR/soak.json"
settle
counts > "$DIR/after.txt"
RSS_END=$(rss)
kill -TERM $PID
wait $PID || true
trap - EXIT

python3 - "$DIR" "$RSS_WARM" "$RSS_END" <<'PY'
import json, sys
d, warm, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rep = json.load(open(f"{d}/soak.json"))
c = rep["connections"]
def table(p):
    return dict(l.rsplit(" ", 1) for l in open(p).read().splitlines() if l.strip())
base, after = table(f"{d}/baseline.txt"), table(f"{d}/after.txt")
# Gauges of memory are not connection-scoped; everything else must be exactly back.
moved = {k: (base.get(k), v) for k, v in after.items() if base.get(k, "0") != v}
alerts = sum(1 for l in open(f"{d}/recording.jsonl") if l.startswith('{"t"') and '"alert":' in l[:40])
print(f"streams opened {c['opened']}, aborts {c['aborts']}, resumes {c['resumes']}, 409s {c['conflicts']}, "
      f"violations {rep['violations']['total']}")
print(f"resident memory: warmed up {warm/1e6:.1f} MB, after {end/1e6:.1f} MB ({(end/warm-1)*100:+.1f}%)")
print(f"alerts: {alerts}")
print("counts back at baseline: " + ("all" if not moved else f"NO: {moved}"))
ok = not moved and alerts == 0 and rep["violations"]["total"] == 0 and abs(end / warm - 1) <= 0.10
print("soak: " + ("PASS" if ok else "FAIL"))
sys.exit(0 if ok else 1)
PY
