#!/usr/bin/env bash
# Runs a GoogleTest binary under valgrind's memcheck: any invalid read or write, use of
# uninitialised memory or definite leak fails the test, not only a failed expectation.
# For tests whose failure mode is a use-after-free that a plain run survives (a fan-out
# freed by its last callback, buffers handed out as views). valgrind comes from
# tools/setup; without it the test fails rather than passing unchecked.
#   memcheck_test.sh TEST_BINARY [gtest flags...]
set -euo pipefail
binary="${1:?usage: memcheck_test.sh TEST_BINARY [flags...]}"
shift
if ! command -v valgrind >/dev/null; then
  echo "memcheck_test: valgrind is not installed (run tools/setup)" >&2
  exit 1
fi
exec valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
  --show-leak-kinds=definite -q "$binary" "$@"
