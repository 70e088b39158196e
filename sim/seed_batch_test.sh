#!/usr/bin/env bash
# CI's fixed simulator batch: the regression corpus (sim/regression_seeds.txt) first, then
# seeds 1..16, each run twice with its trace digests compared (the determinism lane).
set -euo pipefail
sim="$1"
corpus="$(dirname "$0")/regression_seeds.txt"
if [[ -f "$corpus" ]]; then
  while read -r seed _; do
    [[ -z "$seed" || "$seed" == \#* ]] && continue
    "$sim" --seed="$seed" --check-determinism
  done <"$corpus"
fi
"$sim" --seeds=1..16 --duration-s=20 --check-determinism
