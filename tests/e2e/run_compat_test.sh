#!/usr/bin/env bash
# Runs the black-box compatibility tests (e2e/compat_test.py, python3 standard library only)
# against the unimeter binary given as $1.
set -euo pipefail
binary="$1"
case "$binary" in /*) ;; *) binary="$PWD/$binary" ;; esac
export UNIMETER_BINARY="$binary"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The test sandbox may not see the tests' own directory through dirname when run from
# runfiles; fall back to the runfiles layout.
if [[ ! -f "$here/compat_test.py" ]]; then here="$PWD/tests/e2e"; fi
python="$(command -v python3 || true)"
[[ -x /usr/bin/python3 ]] && python=/usr/bin/python3
cd "$here"
exec "$python" -m unittest -v compat_test
