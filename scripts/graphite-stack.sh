#!/usr/bin/env bash
# A loopback-only StatsD -> carbon-cache -> whisper (+ graphite-web) stack in one directory,
# to look at leakwatch's (and your own) counters in Graphite. Nothing in /etc is touched.
#
#   scripts/graphite-stack.sh up     [DIR]   start (DIR default: <repo>/.stack, git-ignored)
#   scripts/graphite-stack.sh status [DIR]   what runs, where
#   scripts/graphite-stack.sh down   [DIR]   stop what `up` started (by recorded PID only)
#
# Ports (all on 127.0.0.1) can be moved with environment variables; defaults in brackets:
#   STATSD_PORT [8125] (UDP)  STATSD_MGMT_PORT [8126]  CARBON_PORT [2003]
#   CARBON_PICKLE_PORT [2004]  CARBON_QUERY_PORT [7002]  GRAPHITE_WEB_PORT [8080]
#   FLUSH_MS [1000] (statsd flush interval; the whisper schema stores 1 s points for 6 h)
# Needs what scripts/install-test-deps.sh installs (graphite-carbon, graphite-web, statsd@0.9.0
# in $LEAKWATCH_STATSD_DIR, default ~/.cache/leakwatch-stack/statsd). Without graphite-web
# the stack runs without the render API (read whisper files with whisper-fetch).
set -euo pipefail

cmd=${1:-}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
D=${2:-$repo/.stack}
mkdir -p "$D"
D=$(cd "$D" && pwd)

STATSD_DIR=${LEAKWATCH_STATSD_DIR:-${HOME:-/root}/.cache/leakwatch-stack/statsd}
STATSD_PORT=${STATSD_PORT:-8125}
STATSD_MGMT_PORT=${STATSD_MGMT_PORT:-8126}
CARBON_PORT=${CARBON_PORT:-2003}
CARBON_PICKLE_PORT=${CARBON_PICKLE_PORT:-2004}
CARBON_QUERY_PORT=${CARBON_QUERY_PORT:-7002}
GRAPHITE_WEB_PORT=${GRAPHITE_WEB_PORT:-8080}
FLUSH_MS=${FLUSH_MS:-1000}

die() { echo "graphite-stack: $*" >&2; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# Alive and ours: a stale PID file (after a reboot) may name an unrelated process by now;
# every process `up` starts has this stack's directory in its command line or environment.
alive() {
  [ -f "$D/$1.pid" ] || return 1
  local p; p=$(cat "$D/$1.pid")
  kill -0 "$p" 2>/dev/null || return 1
  [ -r "/proc/$p/cmdline" ] || return 0
  tr '\0' '\n' < "/proc/$p/cmdline" 2>/dev/null | grep -qF "$D" && return 0
  tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qF "$D"
}
# A port someone else already listens on would make wait_tcp report success for a process
# that in fact failed to bind (and the test would talk to a foreign daemon): refuse up front.
port_free() { # proto(t|u) port name
  if ss -l${1}nH "sport = :$2" 2>/dev/null | grep -q .; then
    die "port $2 ($3) is already in use on this machine; choose another with the environment variable"
  fi
}
wait_tcp() { # port name pidname: wait for a listener, fail early if the process died
  for _ in $(seq 1 150); do
    ss -ltnH "sport = :$1" 2>/dev/null | grep -q . && return 0
    alive "$3" || { echo "graphite-stack: $2 exited; see $D/log/$3.out" >&2; tail -5 "$D/log/$3.out" >&2; return 1; }
    sleep 0.1
  done
  echo "graphite-stack: $2 not listening on 127.0.0.1:$1 after 15 s; see $D/log/" >&2; return 1
}

write_configs() {
  mkdir -p "$D"/{conf,storage/whisper,log/webapp,run,webapp}
  cat > "$D/conf/carbon.conf" <<CONF
[cache]
STORAGE_DIR    = $D/storage/
LOCAL_DATA_DIR = $D/storage/whisper/
LOG_DIR        = $D/log/
PID_DIR        = $D/run/
ENABLE_LOGROTATION = False
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = $CARBON_PORT
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = $CARBON_PICKLE_PORT
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = $CARBON_QUERY_PORT
LOG_UPDATES = False
LOG_CREATES = False
ENABLE_TAGS = True
GRAPHITE_URL = http://127.0.0.1:$GRAPHITE_WEB_PORT
CONF
  # 1 s points (statsd flushes every second) for 6 h, then 1 min for a week. Schemas only
  # apply when a whisper file is created.
  cat > "$D/conf/storage-schemas.conf" <<'CONF'
[carbon]
pattern = ^carbon\.
retentions = 60s:1d
[default_1s]
pattern = .*
retentions = 1s:6h,1m:7d
CONF
  cat > "$D/conf/storage-aggregation.conf" <<'CONF'
[counts]
pattern = \.count$
xFilesFactor = 0
aggregationMethod = sum
[lower]
pattern = \.lower$
xFilesFactor = 0.1
aggregationMethod = min
[upper]
pattern = \.upper(_\d+)?$
xFilesFactor = 0.1
aggregationMethod = max
[default]
pattern = .*
xFilesFactor = 0.3
aggregationMethod = average
CONF
  # legacyNamespace false: stats.counters.<name>.count, stats.gauges.<name>, stats.timers.<name>.*
  cat > "$D/conf/statsd.js" <<CONF
{ graphiteHost: "127.0.0.1", graphitePort: $CARBON_PORT,
  address: "127.0.0.1", port: $STATSD_PORT,
  mgmt_address: "127.0.0.1", mgmt_port: $STATSD_MGMT_PORT,
  flushInterval: $FLUSH_MS,
  backends: ["./backends/graphite"],
  graphite: { legacyNamespace: false },
  automaticConfigReload: false }
CONF
  cat > "$D/webapp/stack_local_settings.py" <<CONF
SECRET_KEY = 'loopback-only'
ALLOWED_HOSTS = ['127.0.0.1', 'localhost']
TIME_ZONE = 'UTC'
LOG_ROTATION = False
DEFAULT_XFILES_FACTOR = 0
GRAPHITE_ROOT = '/usr/share/graphite-web'
STATIC_ROOT = '/usr/share/graphite-web/static'
CONF_DIR = '$D/webapp'
STORAGE_DIR = '$D/storage'
WHISPER_DIR = '$D/storage/whisper'
INDEX_FILE = '$D/storage/index'
LOG_DIR = '$D/log/webapp'
CARBONLINK_HOSTS = ['127.0.0.1:$CARBON_QUERY_PORT']
DATABASES = {'default': {'NAME': '$D/storage/graphite.db', 'ENGINE': 'django.db.backends.sqlite3'}}
FUNCTION_PLUGINS = []
CONF
  {
    echo "STATSD_PORT=$STATSD_PORT"; echo "STATSD_MGMT_PORT=$STATSD_MGMT_PORT"
    echo "GRAPHITE_WEB_PORT=$GRAPHITE_WEB_PORT"; echo "CARBON_PORT=$CARBON_PORT"
  } > "$D/ports"
}

up() {
  command -v carbon-cache >/dev/null || die "carbon-cache not found: run scripts/install-test-deps.sh"
  [ -f "$STATSD_DIR/node_modules/statsd/stats.js" ] ||
    die "statsd not found in $STATSD_DIR: run scripts/install-test-deps.sh (or set LEAKWATCH_STATSD_DIR)"
  for n in carbon statsd web; do alive "$n" && die "already running in $D ($n); use: $0 down $D"; done
  port_free t "$CARBON_PORT" CARBON_PORT; port_free t "$CARBON_PICKLE_PORT" CARBON_PICKLE_PORT
  port_free t "$CARBON_QUERY_PORT" CARBON_QUERY_PORT; port_free u "$STATSD_PORT" STATSD_PORT
  port_free t "$STATSD_MGMT_PORT" STATSD_MGMT_PORT; port_free t "$GRAPHITE_WEB_PORT" GRAPHITE_WEB_PORT
  # A failed start stops what this run already started, so a retry is not refused.
  trap 'rc=$?; if [ $rc -ne 0 ]; then echo "graphite-stack: up failed; stopping what started" >&2; down; fi' EXIT
  write_configs
  local t0; t0=$(now_ms)
  # --nodaemon: stay in the foreground so the recorded PID is carbon's own.
  setsid carbon-cache --config="$D/conf/carbon.conf" --nodaemon start > "$D/log/carbon.out" 2>&1 < /dev/null &
  echo $! > "$D/carbon.pid"; wait_tcp "$CARBON_PORT" carbon-cache carbon
  ( cd "$STATSD_DIR" && exec setsid node node_modules/statsd/stats.js "$D/conf/statsd.js" ) > "$D/log/statsd.out" 2>&1 < /dev/null &
  echo $! > "$D/statsd.pid"; wait_tcp "$STATSD_MGMT_PORT" statsd statsd
  echo "graphite-stack: carbon + statsd up after $(( $(now_ms) - t0 )) ms (statsd udp://127.0.0.1:$STATSD_PORT)"
  if command -v graphite-manage >/dev/null; then
    export PYTHONPATH="$D/webapp" GRAPHITE_SETTINGS_MODULE=stack_local_settings
    graphite-manage migrate --run-syncdb > "$D/log/migrate.out" 2>&1 || { tail -5 "$D/log/migrate.out" >&2; die "graphite-web migrate failed"; }
    # --noreload: the autoreloader would fork, and the recorded PID would not be the server.
    setsid graphite-manage runserver "127.0.0.1:$GRAPHITE_WEB_PORT" --noreload > "$D/log/web.out" 2>&1 < /dev/null &
    echo $! > "$D/web.pid"; wait_tcp "$GRAPHITE_WEB_PORT" graphite-web web
    echo "graphite-stack: graphite-web up after $(( $(now_ms) - t0 )) ms"
  else
    echo "graphite-stack: graphite-web not installed: no render API (whisper files are in $D/storage/whisper)"
  fi
  trap - EXIT
  status
}

status() {
  # The ports `up` used (it may have been given other ones through the environment).
  # shellcheck disable=SC1091
  [ -f "$D/ports" ] && . "$D/ports"
  local any=0
  for n in carbon statsd web; do
    if alive "$n"; then echo "  $n: running (pid $(cat "$D/$n.pid"))"; any=1; else echo "  $n: stopped"; fi
  done
  [ "$any" = 1 ] || return 0
  local w="http://127.0.0.1:$GRAPHITE_WEB_PORT"
  cat <<EOF
Stack in $D (logs in $D/log, whisper files in $D/storage/whisper)
Send:    leakwatch::statsd::StatsdExporter::builder("127.0.0.1:$STATSD_PORT")   or
         echo "demo.counter:1|c" > /dev/udp/127.0.0.1/$STATSD_PORT
Browse:  $w/metrics/find?query=stats.gauges.*
Values:  $w/render?target=stats.gauges.*.*.leakwatch.live.*&from=-5min&format=json
Graph:   $w/render?target=stats.gauges.*.*.leakwatch.live.*&from=-10min&format=png&width=800&height=400
Analyze: leakwatch analyze --graphite $w --target 'stats.gauges.*.*.leakwatch.live.*' --from -2h
Whisper: whisper-fetch --from=\$((\$(date +%s)-60)) $D/storage/whisper/stats/gauges/<path>.wsp
EOF
}

down() {
  for n in web statsd carbon; do
    local f="$D/$n.pid"; [ -f "$f" ] || continue
    local p; p=$(cat "$f")
    if alive "$n"; then
      # Each process leads its own session (setsid): signal the group, children included.
      kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$p" 2>/dev/null; then kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; fi
      echo "graphite-stack: stopped $n ($p)"
    fi
    rm -f "$f"
  done
}

case "$cmd" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status [DIR]" >&2; exit 2 ;;
esac
