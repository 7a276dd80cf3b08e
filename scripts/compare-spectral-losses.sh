#!/usr/bin/env bash
# Distils one student per spectral-loss setting from the same teacher, recipe and seed, and
# scores each on the validation split with `parawave evaluate`. The table at the end is what
# chose distill.spectral_loss's default.
#
#   scripts/compare-spectral-losses.sh [STEPS] [LIMIT]
#
# Needs `make demo` to have run (data/demo, runs/demo/teacher). Writes runs/spectral-sweep/.
set -euo pipefail
steps=${1:-300}
limit=${2:-32}
bin=.build/release/parawave
out=runs/spectral-sweep
mkdir -p "$out"
settings=(
  "none|{kind: none}"
  "power|{kind: power, weight: 2000}"
  "magnitude|{kind: magnitude, weight: 50}"
  "multi_resolution|{kind: multi_resolution, weight: 1}"
)
for entry in "${settings[@]}"; do
  name=${entry%%|*}
  loss=${entry#*|}
  if [ ! -f "$out/$name/model.safetensors" ]; then
    $bin distill --recipe recipes/demo/recipe.yaml --data data/demo --teacher runs/demo/teacher --run "$out/$name" \
      --steps "$steps" --set "distill.spectral_loss=$loss" --set distill.validate_every=100000
  fi
  $bin evaluate --model "$out/$name" --teacher runs/demo/teacher --data data/demo --limit "$limit" --json "$out/$name.json" \
    | tee "$out/$name.txt"
done
echo
echo "student after $steps steps, by spectral loss ($limit validation utterances):"
for entry in "${settings[@]}"; do
  name=${entry%%|*}
  printf '%-18s %s\n' "$name" "$(grep '^student' "$out/$name.txt")"
done
