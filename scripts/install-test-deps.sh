#!/usr/bin/env bash
# Installs what the real StatsD -> carbon -> whisper -> graphite-web pipeline test
# (leakwatch-cli/tests/graphite_pipeline.rs) and scripts/graphite-stack.sh need. Idempotent: a second run
# does nothing but check. Needs root (or sudo) for apt, node 20 + npm for the statsd daemon.
#
#   scripts/install-test-deps.sh            # apt: graphite-carbon graphite-web chromium chromium-driver; npm: statsd@0.9.0
#
# The Etsy statsd daemon has no Debian package; it is npm-installed into
# $LEAKWATCH_STATSD_DIR (default: $HOME/.cache/leakwatch-stack/statsd), where the test and the
# stack script look for it.
set -euo pipefail

STATSD_VERSION=0.9.0
STATSD_DIR=${LEAKWATCH_STATSD_DIR:-${HOME:-/root}/.cache/leakwatch-stack/statsd}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-test-deps: not root and no sudo; install graphite-carbon graphite-web by hand" >&2
  fi
fi

# carbon-cache + whisper-fetch come with graphite-carbon (python3-whisper); graphite-manage
# (the render API) with graphite-web. Nothing else is needed: the scripts use bash, ss and
# python3 from the base system and the pipeline test talks UDP/HTTP from Rust.
need_apt=()
command -v carbon-cache    >/dev/null 2>&1 || need_apt+=(graphite-carbon)
command -v whisper-fetch   >/dev/null 2>&1 || need_apt+=(graphite-carbon)
command -v graphite-manage >/dev/null 2>&1 || need_apt+=(graphite-web)
command -v ss              >/dev/null 2>&1 || need_apt+=(iproute2)
# The statsd daemon runs on node (the test checks for it); npm only to install it.
command -v node            >/dev/null 2>&1 || need_apt+=(nodejs)
# The dashboard's browser test (leakwatch-dashboard/tests/browser.rs): headless Chromium,
# driven through chromedriver.
command -v chromium        >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver    >/dev/null 2>&1 || need_apt+=(chromium-driver)
if ! [ -f "$STATSD_DIR/node_modules/statsd/stats.js" ] && ! command -v npm >/dev/null 2>&1; then
  need_apt+=(npm)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
    echo "install-test-deps: need $(printf "%s\n" "${need_apt[@]}" | sort -u | tr "\n" " ")but not root and no sudo" >&2
    exit 1
  fi
  echo "install-test-deps: apt-get install $(printf "%s\n" "${need_apt[@]}" | sort -u | tr "\n" " ")"
  $SUDO apt-get update -qq
  # policy-rc.d denies starting carbon's service in containers: harmless, we start it by hand.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    $(printf '%s\n' "${need_apt[@]}" | sort -u) >/dev/null
fi

if [ -f "$STATSD_DIR/node_modules/statsd/stats.js" ] &&
   grep -q "\"version\": \"$STATSD_VERSION\"" "$STATSD_DIR/node_modules/statsd/package.json"; then
  :
else
  command -v npm >/dev/null 2>&1 || { echo "install-test-deps: npm not found (need node + npm)" >&2; exit 1; }
  echo "install-test-deps: npm install statsd@$STATSD_VERSION into $STATSD_DIR"
  mkdir -p "$STATSD_DIR"
  # --omit=optional: skips modern-syslog (a node-gyp build only used for syslog logging).
  (cd "$STATSD_DIR" && { [ -f package.json ] || npm init -y >/dev/null; } &&
     npm install --no-audit --no-fund --omit=optional --loglevel=error "statsd@$STATSD_VERSION" >/dev/null)
fi

echo "install-test-deps: ok: $(command -v node) $(command -v carbon-cache) $(command -v whisper-fetch) $(command -v graphite-manage) $(command -v chromium) $(command -v chromedriver) statsd@$STATSD_VERSION in $STATSD_DIR"
