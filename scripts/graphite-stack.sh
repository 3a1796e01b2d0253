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
#
# Each daemon runs in a session of its own under a small watcher (this script's `_watch`), which
# writes how it ended to log/<name>.exit ("exited with status N" / "killed by signal S"); its
# output goes to log/<name>.out. `up` exits 3 (not 1) when a port was taken by someone else, so a
# caller that picked free ports can pick new ones and retry.
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

SELF="$repo/scripts/$(basename "${BASH_SOURCE[0]}")"
die() { echo "graphite-stack: $*" >&2; exit 1; }
# Exit status 3: a port is taken (by another program); the same call with other ports may work.
port_taken() { echo "graphite-stack: $*" >&2; exit 3; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# The kernel's start time of a process (field 22 of /proc/PID/stat, after the command name,
# which may hold spaces): set at fork, unchanged by exec, so PID + start time name one process.
start_time() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
# Alive and ours. The PID file holds "PID START_TIME GROUP". A stale PID file (after a reboot)
# may name an unrelated process by now; the start time tells them apart. (This used to look
# for the stack's directory in /proc/PID/cmdline, but while a process execs (setsid -> node,
# carbon-cache -> python3) its cmdline reads empty for a moment, and under CPU load that
# moment was seen often enough to report a starting daemon as dead: "statsd exited" with an
# empty log, 3 runs in 11.)
alive() {
  [ -f "$D/$1.pid" ] || return 1
  local p s g
  read -r p s g < "$D/$1.pid" || true
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 1
  # A zombie (ended, not yet reaped by its watcher) is not running.
  [ "$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f1)" != Z ] || return 1
  [ -n "$s" ] && [ "$(start_time "$p")" = "$s" ]
}
# A port someone else already listens on would make wait_port report success for a process
# that in fact failed to bind (and the test would talk to a foreign daemon): refuse up front.
port_free() { # proto(t|u) port name
  if ss -l${1}nH "sport = :$2" 2>/dev/null | grep -q .; then
    port_taken "port $2 ($3) is already in use on this machine; choose another with the environment variable"
  fi
}
# Why a daemon is gone: its watcher's record (written a moment after the end) and its output.
# Exits 3 if it died for want of a port, as a port picked free can be taken before the daemon
# binds it (another program's bind to port 0 or outgoing connection).
died() { # name pidname
  local n=$2
  for _ in $(seq 1 50); do [ -s "$D/log/$n.exit" ] && break; sleep 0.1; done
  echo "graphite-stack: $1 ended before it was ready: $(cat "$D/log/$n.exit" 2>/dev/null || echo "no exit record")" >&2
  echo "graphite-stack: last lines of $D/log/$n.out:" >&2
  tail -20 "$D/log/$n.out" >&2 || true
  # statsd (EADDRINUSE), carbon (twisted) and graphite-web (Django's runserver) each say it
  # their own way.
  if grep -qE 'EADDRINUSE|Address already in use|Couldn.t listen on|That port is already in use' "$D/log/$n.out" 2>/dev/null; then
    port_taken "$1 could not bind its port (taken by another program since it was checked)"
  fi
  return 1
}
wait_port() { # proto(t|u) port name pidname: poll for a listener, fail as soon as the process ends
  for _ in $(seq 1 300); do
    ss -l${1}nH "sport = :$2" 2>/dev/null | grep -q . && return 0
    alive "$4" || { died "$3" "$4"; return 1; }
    sleep 0.1
  done
  echo "graphite-stack: $3 not listening on 127.0.0.1:$2 after 30 s; see $D/log/$4.out" >&2; return 1
}
# Starts a daemon in a session of its own (so `down` can signal its whole process group)
# under a watcher that records how it ends, and waits until the watcher wrote the PID file.
launch() { # name command...
  local n=$1; shift
  rm -f "$D/$n.pid" "$D/log/$n.exit"
  setsid bash "$SELF" _watch "$D" "$n" "$@" < /dev/null > /dev/null 2>&1 &
  for _ in $(seq 1 100); do [ -s "$D/$n.pid" ] && return 0; sleep 0.05; done
  die "the watcher of $n did not start"
}
# The watcher: the session leader, parent of the daemon; waits for it and writes how it ended.
watch() { # dir name command...
  set +e
  D=$1; local n=$2; shift 2
  local stopping=""
  # `down` signals the whole group: note it and keep waiting for the daemon to end.
  trap 'stopping=" (after a stop signal)"' TERM INT HUP
  "$@" > "$D/log/$n.out" 2>&1 < /dev/null &
  local child=$! rc
  echo "$child $(start_time "$child") $$" > "$D/$n.pid.new" && mv "$D/$n.pid.new" "$D/$n.pid"
  while :; do
    wait "$child"; rc=$?
    kill -0 "$child" 2>/dev/null || break # ended (a trapped signal also ends `wait` early)
  done
  # If a signal interrupted the last `wait` just as the daemon ended, its status is still kept.
  local again; wait "$child" 2>/dev/null; again=$?; [ "$again" -ne 127 ] && rc=$again
  local how="exited with status $rc"
  [ "$rc" -gt 128 ] && how="killed by signal $(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128))) (status $rc)"
  echo "$(date -u +%FT%TZ) $n (pid $child) $how$stopping" > "$D/log/$n.exit"
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
  # Left by an earlier run in this directory (a crash, a reboot): twistd refuses to start while
  # its PID file names a running process, and after a reboot that PID may be anyone's.
  rm -f "$D"/run/*.pid
  local t0; t0=$(now_ms)
  # --nodaemon: stay in the foreground (logging to stdout) so the watcher is carbon's parent.
  launch carbon carbon-cache --config="$D/conf/carbon.conf" --nodaemon start
  wait_port t "$CARBON_PORT" carbon-cache carbon
  wait_port t "$CARBON_PICKLE_PORT" carbon-cache carbon
  wait_port t "$CARBON_QUERY_PORT" carbon-cache carbon
  # statsd resolves its backends relative to its own directory; the config path is absolute.
  launch statsd node "$STATSD_DIR/node_modules/statsd/stats.js" "$D/conf/statsd.js"
  wait_port u "$STATSD_PORT" statsd statsd
  wait_port t "$STATSD_MGMT_PORT" statsd statsd
  echo "graphite-stack: carbon + statsd up after $(( $(now_ms) - t0 )) ms (statsd udp://127.0.0.1:$STATSD_PORT)"
  if command -v graphite-manage >/dev/null; then
    export PYTHONPATH="$D/webapp" GRAPHITE_SETTINGS_MODULE=stack_local_settings
    graphite-manage migrate --run-syncdb > "$D/log/migrate.out" 2>&1 || { tail -5 "$D/log/migrate.out" >&2; die "graphite-web migrate failed"; }
    # --noreload: the autoreloader would fork, and the recorded PID would not be the server.
    launch web graphite-manage runserver "127.0.0.1:$GRAPHITE_WEB_PORT" --noreload
    wait_port t "$GRAPHITE_WEB_PORT" graphite-web web
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
    if alive "$n"; then echo "  $n: running (pid $(cut -d' ' -f1 "$D/$n.pid"))"; any=1
    elif [ -s "$D/log/$n.exit" ]; then echo "  $n: stopped: $(cat "$D/log/$n.exit")"
    else echo "  $n: stopped"; fi
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
    local p s g; read -r p s g < "$f" || true
    if alive "$n"; then
      # The watcher leads the daemon's session (setsid): signal the group, daemon included.
      kill -TERM -- "-${g:-$p}" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
      for _ in $(seq 1 50); do alive "$n" || break; sleep 0.1; done
      if alive "$n"; then kill -KILL -- "-${g:-$p}" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; fi
      echo "graphite-stack: stopped $n ($p)"
    fi
    rm -f "$f"
  done
}

case "$cmd" in
  up) up ;;
  down) down ;;
  status) status ;;
  _watch) shift 2; watch "$D" "$@" ;;
  *) echo "usage: $0 up|down|status [DIR]" >&2; exit 2 ;;
esac
