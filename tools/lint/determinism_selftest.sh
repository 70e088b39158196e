#!/usr/bin/env bash
# Self-test of the banned-API lint: proves it can fail, and on exactly the right lines.
#
#   determinism_selftest.sh LINT PATTERNS EXPECTED BAD_FILE GOOD_FILE
#
# Run by //tools/lint:determinism_selftest (tools/lint/testdata/ holds the fixtures).
set -euo pipefail

if [[ $# -ne 5 ]]; then
  echo "usage: $0 LINT PATTERNS EXPECTED BAD_FILE GOOD_FILE" >&2
  exit 2
fi
lint="$1" patterns="$2" expected="$3" bad="$4" good="$5"
tmp="$(mktemp -d "${TEST_TMPDIR:-/tmp}/determinism_selftest.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# `path/bad.cc:12: std::mutex: reason` -> `bad.cc:12: std::mutex`
normalize() {
  sed -E 's#^[^:]*/##; s#^([^:]+:[0-9]+: [^ ]+): .*#\1#' | LC_ALL=C sort
}

# 1. Bad and good fixture together: exit 1 and exactly the expected hits.
status=0
"$lint" "$patterns" "$bad" "$good" >"$tmp/out" 2>"$tmp/err" || status=$?
if [[ $status -ne 1 ]]; then
  fail "lint over the fixtures exited $status, want 1"
  cat "$tmp/err"
fi
normalize <"$tmp/out" >"$tmp/got"
grep -v -e '^#' -e '^$' "$expected" | LC_ALL=C sort >"$tmp/want"
if ! diff -u "$tmp/want" "$tmp/got" >"$tmp/diff"; then
  fail "hits differ from $(basename "$expected") (- expected, + actual):"
  cat "$tmp/diff"
else
  echo "ok: $(wc -l <"$tmp/got") expected hits in $(basename "$bad"), none in $(basename "$good")"
fi

# 2. Every hit is `file:line: pattern: reason` with a non-empty reason.
if grep -v -E '^[^:]+:[0-9]+: [^ ]+: .*[^ ]' "$tmp/out" >"$tmp/malformed"; then
  fail "malformed hit lines:"
  cat "$tmp/malformed"
else
  echo "ok: every hit reads file:line: pattern: reason"
fi

# 3. The good fixture alone passes with no output.
status=0
"$lint" "$patterns" "$good" >"$tmp/out_good" 2>"$tmp/err_good" || status=$?
if [[ $status -ne 0 || -s "$tmp/out_good" ]]; then
  fail "lint over $(basename "$good") exited $status, want 0 and no hits:"
  cat "$tmp/out_good" "$tmp/err_good"
else
  echo "ok: $(basename "$good") passes"
fi

# 4. Every banned pattern is exercised by the bad fixture (keeps the fixture in sync).
missing=0
while IFS=$'\t' read -r pattern _; do
  if ! cut -d' ' -f2- "$tmp/want" | grep -qxF -- "$pattern"; then
    fail "pattern '$pattern' has no expected hit in $(basename "$bad")"
    missing=1
  fi
done < <(grep -v -E '^[[:space:]]*(#|$)' "$patterns")
if [[ $missing -eq 0 ]]; then
  echo "ok: every pattern of $(basename "$patterns") is exercised"
fi

# 5. Broken inputs are errors (exit 2), never a silent pass.
printf 'pattern without a reason\n' >"$tmp/broken.txt"
status=0
"$lint" "$tmp/broken.txt" "$good" >/dev/null 2>&1 || status=$?
[[ $status -eq 2 ]] || fail "a pattern line without TAB gave exit $status, want 2"
status=0
"$lint" "$patterns" "$tmp/no-such-file.cc" >/dev/null 2>&1 || status=$?
[[ $status -eq 2 ]] || fail "a missing source file gave exit $status, want 2"
mkdir "$tmp/empty"
status=0
"$lint" "$patterns" "$tmp/empty" >/dev/null 2>&1 || status=$?
[[ $status -eq 2 ]] || fail "an empty scope gave exit $status, want 2"
echo "ok: broken inputs are checked"

if [[ $failures -gt 0 ]]; then
  echo "determinism selftest: $failures failure(s)"
  exit 1
fi
echo "determinism selftest: all checks passed"
