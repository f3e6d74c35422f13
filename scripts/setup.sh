#!/usr/bin/env bash
# Install what camgate needs when it is missing, then sync the workspace. Quick when nothing is.
#   - Debian packages: GStreamer's RTSP server (the real RTSP peer of tests and the demo), ffmpeg
#     (ffprobe checks our output; the benchmarks' baseline), PostgreSQL (the audit log's second
#     store: tests and benchmarks start their own server from /usr/lib/postgresql/<ver>/bin) with
#     PostGIS for that major (postgresql-<ver>-postgis-3: the geofence index in SQL), a
#     C compiler with the headers of Python, SQLite, OpenSSL and libpq (uv sync builds
#     camgate-native, the audit log's compiled verifier, from source); Chromium, Node.js and
#     npm (the browser tests under tests/browser/ drive Debian's chromium with Playwright: no
#     browser is downloaded); openssl (camgate-ring's simulator makes its test TLS certificates
#     with it);
#   - hls.js from the npm registry (the browser tests' HLS player), at the version pinned in
#     tests/browser/package-lock.json, into tests/browser/node_modules/;
#   - uv (on PATH, or bootstrapped into .tools/ from PyPI);
#   - the workspace's locked Python dependencies (uv sync --locked).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
  gstreamer1.0-plugins-bad ffmpeg postgresql gcc libc6-dev python3-dev libsqlite3-dev libssl-dev
  libpq-dev chromium
  openssl  # the openssl command: the Arlo and Ring simulators' self-signed certificates
  nats-server  # edges at owners' sites (camgate edge serve): JetStream; tests start their own
)
# npm (for hls.js, below) only where none is on PATH: a Node.js from elsewhere brings its own,
# and Debian's npm package conflicts with it.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)

# Install those of the given Debian packages that are missing (apt-get; as root or with sudo).
apt_install_missing() {
  local missing=() pkg SUDO=""
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
apt_install_missing "${APT_PACKAGES[@]}"

# PostGIS (the geofence index inside PostgreSQL: camgate.geofence.postgis) built for the
# PostgreSQL major installed above: the newest under /usr/lib/postgresql, as the tests use.
pg_major=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -name '[0-9]*' -printf '%f\n' 2>/dev/null | sort -n | tail -n 1 || true)
if [ -n "$pg_major" ]; then
  apt_install_missing "postgresql-${pg_major}-postgis-3"
fi

if command -v uv >/dev/null 2>&1; then
  UV=$(command -v uv)
elif [ -x .tools/bin/uv ]; then
  UV=.tools/bin/uv
else
  echo "setup: bootstrapping uv into .tools/" >&2
  PY=$(command -v python3)
  if ! "$PY" -m venv .tools >/dev/null 2>&1; then
    # Debian's own python3 needs python3-venv for this.
    rm -rf .tools
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    "$PY" -m venv .tools
  fi
  .tools/bin/python -m pip install -q --disable-pip-version-check uv
  UV=.tools/bin/uv
fi

"$UV" sync --locked --quiet

# hls.js for the browser tests: npm ci only when the pinned copy is missing.
if [ ! -f tests/browser/node_modules/hls.js/dist/hls.min.js ]; then
  echo "setup: installing hls.js for the browser tests (npm ci in tests/browser/)" >&2
  (cd tests/browser && npm ci --silent --no-audit --no-fund --ignore-scripts)
fi

# The pages' front-end packages (server/web/package-lock.json): Leaflet is vendored into
# camgate_server's static files and committed (server/web/vendor.py --check verifies it against
# the lock file); axe-core is the browser tests' accessibility check. npm ci only when missing.
if [ ! -f server/web/node_modules/axe-core/axe.min.js ]; then
  echo "setup: installing the pages' front-end packages (npm ci in server/web/)" >&2
  (cd server/web && npm ci --silent --no-audit --no-fund --ignore-scripts)
fi
