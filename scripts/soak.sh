#!/usr/bin/env bash
# The kill soak: a small training run SIGKILLed at 20 seeded random moments and resumed
# each time must end bit-identical to the same run never interrupted.
#
#   scripts/soak.sh [-k KILLS] [-s SEED] [-n STEPS]
#
# It prepares 24 klettres-data recordings (make demo-deps installs them) into a scratch
# folder, trains the uninterrupted reference, then the interrupted run: each round resumes
# (or starts) it, lets it train for a drawn 0.3 to 3 seconds and kills it with SIGKILL,
# which gives the process no chance to clean up. The final run is resumed to the end and
# its model.safetensors compared byte for byte with the reference's.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KILLS=20 SEED=1 STEPS=400
while getopts "k:s:n:" option; do
    case $option in
        k) KILLS=$OPTARG ;; s) SEED=$OPTARG ;; n) STEPS=$OPTARG ;;
        *) sed -n 2,11p "$0" >&2; exit 2 ;;
    esac
done
PARAWAVE=${PARAWAVE:-"$ROOT/.build/release/parawave"}
[ -x "$PARAWAVE" ] || { echo "build first (make build): $PARAWAVE is missing" >&2; exit 1; }
SOURCE=/usr/share/klettres
[ -d "$SOURCE" ] || { echo "install klettres-data first (make demo-deps)" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/corpus"
mapfile -t files < <(find "$SOURCE" -name '*.ogg' | sort)
for f in "${files[@]:0:24}"; do cp "$f" "$WORK/corpus/$(echo "${f#"$SOURCE"/}" | tr / _)"; done
cat > "$WORK/recipe.yaml" <<YAML
audio: {sample_rate: 16000, n_fft: 1024, hop_length: 256, win_length: 1024, n_mels: 80}
data: {validation_fraction: 0.1}
teacher: {layers: 6, cycle: 3, residual_channels: 16, gate_channels: 32, skip_channels: 16, mixtures: 4, source: sine, harmonics: 4}
pitch: {predictor_layers: 2, predictor_channels: 16}
train: {steps: $STEPS, batch_size: 2, crop: 2048, learning_rate: 0.002, checkpoint_every: 9, validate_every: 50, log_every: 10,
        validation_utterances: 2, seed: 3}
YAML
"$PARAWAVE" prepare "$WORK/corpus" --recipe "$WORK/recipe.yaml" --out "$WORK/data" > /dev/null
train=(train-teacher --data "$WORK/data")
echo "reference: $STEPS steps uninterrupted"
"$PARAWAVE" "${train[@]}" --recipe "$WORK/recipe.yaml" --run "$WORK/reference" > /dev/null 2>&1

RANDOM=$SEED
kills=0
for ((round = 1; round <= KILLS; round++)); do
    resume=()
    [ -f "$WORK/killed/train-state.safetensors" ] && resume=(--resume)
    "$PARAWAVE" "${train[@]}" --recipe "$WORK/recipe.yaml" --run "$WORK/killed" "${resume[@]}" > /dev/null 2>&1 &
    pid=$!
    delay=$(printf '%d.%03d' $((RANDOM % 3)) $((300 + RANDOM % 700)))
    sleep "$delay"
    if kill -KILL "$pid" 2> /dev/null; then
        kills=$((kills + 1))
        wait "$pid" 2> /dev/null || true
        step=$(grep -o '"step":[0-9]*' "$WORK/killed/metrics.jsonl" 2> /dev/null | tail -1 | cut -d: -f2)
        echo "round $round: killed after ${delay} s (metrics at step ${step:-0})"
    else
        wait "$pid" || true
        echo "round $round: the run finished within ${delay} s"
        break
    fi
done
"$PARAWAVE" "${train[@]}" --run "$WORK/killed" --resume > /dev/null 2>&1
if cmp -s "$WORK/reference/model.safetensors" "$WORK/killed/model.safetensors"; then
    echo "soak passed: $kills SIGKILLs, the resumed run's model is bit-identical to the uninterrupted one"
else
    echo "soak FAILED: after $kills SIGKILLs the resumed run's model differs from the uninterrupted one" >&2
    exit 1
fi
