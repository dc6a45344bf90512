#!/bin/sh
# setup.sh -- installs every build and test dependency of herald on Debian 12
# (non-interactive, idempotent), the test clients from npm (pinned by
# tests/node/package-lock.json, into the ignored tests/node/node_modules),
# and prepares the tree (autoreconf).
# Run as root from the top of the source tree.
set -e

PACKAGES="build-essential autoconf automake libtool-bin pkg-config \
libev-dev libsqlite3-dev libsodium-dev libcurl4-openssl-dev libjansson-dev libhiredis-dev \
clang libclang-rt-14-dev valgrind sqlite3 \
python3 python3-pytest python3-websockets python3-requests chromium \
nginx openssl redis-server"
# Node.js may come from elsewhere than Debian; only its absence asks for Debian's.
command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES nodejs npm"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "setup: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing
fi

cd "$(dirname "$0")/.."
if [ ! tests/node/node_modules/.package-lock.json -nt tests/node/package-lock.json ]; then
	echo "setup: installing the npm test clients"
	(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
fi
mkdir -p m4
autoreconf -fi
