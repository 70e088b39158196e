#!/usr/bin/env bash
# The planted-bug lane: every deliberate bug of node/base/planted_bugs.h must be caught by
# the simulator (a checker's violated invariant, or an always-on assertion) within 500
# seeds, counting from seed 1. Also checks that the release simulator refuses --plant.
#   planted_bugs_test.sh PLANTED_SIM RELEASE_SIM [SEEDS_MAX]
set -uo pipefail
planted_sim="$1"
release_sim="$2"
seeds_max="${3:-500}"
duration_s=20

if "$release_sim" --plant=owner-copy-is-quorum --seed=1 >/dev/null 2>&1; then
  echo "FAIL: the release simulator accepted --plant" >&2
  exit 1
fi

bugs="$("$planted_sim" --plant=list)" || { echo "FAIL: --plant=list" >&2; exit 1; }
[[ -n "$bugs" ]] || { echo "FAIL: no planted bugs listed" >&2; exit 1; }

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
missed=0
count=0
while read -r name nodes; do
  count=$((count + 1))
  caught=""
  for ((seed = 1; seed <= seeds_max; ++seed)); do
    # In a command substitution with its stderr dropped, so that bash's own report of a
    # child killed by SIGABRT stays out of the output (the check message is in the log).
    status=$(
      "$planted_sim" --plant="$name" --seed="$seed" --nodes="$nodes" \
        --duration-s="$duration_s" >"$log" 2>&1
      echo $?
    ) 2>/dev/null
    if ((status == 1)); then
      caught="seed $seed: $(grep -m1 'violated:' "$log" | sed 's/^ *violated: //')"
      break
    elif ((status != 0)); then
      caught="seed $seed: assertion: $(grep -m1 -i 'check failed' "$log" || echo "exit $status")"
      break
    fi
  done
  if [[ -n "$caught" ]]; then
    printf '%-30s caught at %s\n' "$name" "${caught:0:300}"
  else
    printf '%-30s NOT CAUGHT in seeds 1..%d\n' "$name" "$seeds_max"
    missed=$((missed + 1))
  fi
done <<<"$bugs"

if ((count < 8)); then
  echo "FAIL: only $count planted bugs (the lane needs at least 8)" >&2
  exit 1
fi
echo "$count planted bugs, $missed not caught"
((missed == 0))
