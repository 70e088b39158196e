#!/usr/bin/env bash
# Banned-API lint for core code (determinism rules).
#
#   determinism_lint.sh PATTERNS_FILE PATH...
#
# PATTERNS_FILE has one `pattern<TAB>reason` per line (`#` comments, blank lines).
# Each PATH is a source file, or a directory searched recursively for *.h, *.cc, *.proto.
# A pattern is a fixed string matched at a word start: the character before the match
# must not be [A-Za-z0-9_]. A line containing `// determinism-ok: <reason>` (non-empty
# reason) is exempt.
#
# Prints `file:line: pattern: reason` per hit on stdout (one per pattern and line) and
# exits 1 when there is any hit, 2 on usage or input errors, 0 otherwise.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 PATTERNS_FILE PATH..." >&2
  exit 2
fi
patterns="$1"
shift
if [[ ! -f "$patterns" ]]; then
  echo "determinism lint: patterns file not found: $patterns" >&2
  exit 2
fi

files=()
for path in "$@"; do
  if [[ -d "$path" ]]; then
    while IFS= read -r -d '' f; do
      files+=("$f")
    done < <(find -L "$path" -type f \( -name '*.h' -o -name '*.cc' -o -name '*.proto' \) -print0 | sort -z)
  elif [[ -f "$path" ]]; then
    files+=("$path")
  else
    echo "determinism lint: no such file or directory: $path" >&2
    exit 2
  fi
done
if [[ ${#files[@]} -eq 0 ]]; then
  echo "determinism lint: no source files to check (an empty scope would pass silently)" >&2
  exit 2
fi

set +e
awk -v patfile="$patterns" '
  BEGIN { n = 0; hits = 0; scanned = 0; bad_patterns = 0 }
  FILENAME == patfile {
    sub(/\r$/, "")
    if ($0 ~ /^[ \t]*(#|$)/) next
    tab = index($0, "\t")
    if (tab <= 1) {
      printf "determinism lint: %s:%d: expected pattern<TAB>reason\n", FILENAME, FNR > "/dev/stderr"
      bad_patterns = 1
      next
    }
    pat[n] = substr($0, 1, tab - 1)
    reason = substr($0, tab + 1)
    sub(/^[ \t]+/, "", reason)
    why[n] = reason
    n++
    next
  }
  FNR == 1 { scanned++ }
  {
    line = $0
    ok = index(line, "// determinism-ok:")
    if (ok > 0 && substr(line, ok + 18) ~ /[^ \t]/) next
    for (i = 0; i < n; i++) {
      rest = line
      offset = 0
      while ((at = index(rest, pat[i])) > 0) {
        pos = offset + at
        before = pos > 1 ? substr(line, pos - 1, 1) : ""
        if (before !~ /[A-Za-z0-9_]/) {
          printf "%s:%d: %s: %s\n", FILENAME, FNR, pat[i], why[i]
          hits++
          hit_file[FILENAME] = 1
          break
        }
        rest = substr(rest, at + 1)
        offset = pos
      }
    }
  }
  END {
    if (bad_patterns) exit 2
    if (n == 0) {
      print "determinism lint: no patterns in " patfile > "/dev/stderr"
      exit 2
    }
    if (hits > 0) {
      files_hit = 0
      for (f in hit_file) files_hit++
      printf "determinism lint: %d banned use(s) in %d file(s) (of %d checked); fix them or add `// determinism-ok: <reason>`\n", hits, files_hit, scanned > "/dev/stderr"
      exit 1
    }
    printf "determinism lint: %d file(s) checked against %d patterns, no banned use\n", scanned, n > "/dev/stderr"
  }
' "$patterns" "${files[@]}"
status=$?
set -e
exit "$status"
