#!/bin/sh
# integration.sh -- runs the integration suite (pytest) against the heraldd
# built in this tree; make check sets HERALDD, HERALDCTL and HERALD_BENCH.
cd "${SRCDIR:-$(dirname "$0")/..}" || exit 1
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration "$@"
