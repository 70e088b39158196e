#!/usr/bin/env bash
# CI's fixed simulator batch: the regression corpus (sim/regression_seeds.txt) first, then
# fresh seeds, each run twice with its trace digests compared (the determinism lane):
# 16 seeds of a replicated 3-node cluster and 16 of a single node, liveness-mode seeds (a
# majority core heals, the minority's faults stay: 8 of 3 nodes, 2 of 5), 4 unrestricted-mode
# seeds and one performance-mode run.
set -euo pipefail
sim="$1"
corpus="$(dirname "$0")/regression_seeds.txt"
if [[ -f "$corpus" ]]; then
  set -f  # The descriptions are words, never globs.
  while read -r seed nodes rest; do
    [[ -z "$seed" || "$seed" == \#* ]] && continue
    flags=()
    for token in $rest; do
      case "$token" in
        mode=* | duration-s=*) flags+=("--$token") ;;
        *) break ;;  # The description starts.
      esac
    done
    "$sim" --seed="$seed" --nodes="$nodes" "${flags[@]}" --check-determinism
  done <"$corpus"
  set +f
fi
"$sim" --seeds=1..16 --nodes=3 --duration-s=20 --check-determinism
"$sim" --seeds=1..16 --nodes=1 --duration-s=20 --check-determinism
# The core alone must recover within the liveness bounds (L1, L2, L5).
"$sim" --seeds=1..8 --nodes=3 --duration-s=20 --mode=liveness --check-determinism
"$sim" --seeds=1..2 --nodes=5 --duration-s=20 --mode=liveness --check-determinism
# Safety-only mode (any number of nodes disturbed) and the fault-free cost report.
"$sim" --seeds=1..4 --nodes=3 --duration-s=20 --mode=unrestricted --check-determinism
"$sim" --seed=1 --nodes=3 --duration-s=10 --mode=performance
