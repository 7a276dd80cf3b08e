#!/usr/bin/env bash
# Makes the shipped models of audio/pretrained from a finished recipes/demo-long run: a
# teacher run and a student distilled from it (as recipes/demo-long/recipe.yaml's header
# shows). For each model it copies the EMA checkpoint, the resolved recipe and the metrics,
# and draws the training curves; then it scores both models with `parawave evaluate --f0
# both` on the demo validation split (DATA) and on the unseen check corpus (CHECK), keeping
# report.txt and report.json of each, and refreshes audio/examples from those reports: per
# utterance the stored mel (ID.npy), the real recording and the Griffin-Lim, teacher and
# student renderings (tracked F0), and the PNG stacking their spectrograms. With -w, a
# WaveGlow run (recipes/demo-long's waveglow section) is shipped beside them in
# audio/pretrained/waveglow, scored in the same reports at sampling deviation SIGMA (-s,
# default evaluate's 0.6), and rendered into the examples (ID.waveglow.wav).
#
#   scripts/ship-models.sh [-d DATA] [-c CHECK] [-w WAVEGLOW_RUN] [-s SIGMA] TEACHER_RUN STUDENT_RUN ID...
#
# The IDs name the example utterances, from either split.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA="$ROOT/data/demo" CHECK="$ROOT/data/check" WAVEGLOW="" SIGMA=""
PARAWAVE=${PARAWAVE:-"$ROOT/.build/release/parawave"}
while getopts "d:c:w:s:" option; do
    case $option in
        d) DATA=$OPTARG ;; c) CHECK=$OPTARG ;; w) WAVEGLOW=$OPTARG ;; s) SIGMA=$OPTARG ;;
        *) sed -n 2,16p "$0" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -lt 3 ]; then sed -n 2,16p "$0" >&2; exit 2; fi
TEACHER=$1 STUDENT=$2
shift 2
[ -x "$PARAWAVE" ] || { echo "build first (make build): $PARAWAVE is missing" >&2; exit 1; }
for run in "$TEACHER" "$STUDENT" ${WAVEGLOW:+"$WAVEGLOW"}; do
    [ -f "$run/model.safetensors" ] || { echo "$run holds no model.safetensors" >&2; exit 1; }
done

PRETRAINED="$ROOT/audio/pretrained" EXAMPLES="$ROOT/audio/examples"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
roles=(teacher student)
[ -n "$WAVEGLOW" ] && roles+=(waveglow)
for role in "${roles[@]}"; do
    run=$TEACHER
    [ $role = student ] && run=$STUDENT
    [ $role = waveglow ] && run=$WAVEGLOW
    mkdir -p "$PRETRAINED/$role"
    cp "$run/model.safetensors" "$run/recipe.yaml" "$run/metrics.jsonl" "$PRETRAINED/$role/"
    "$PARAWAVE" plot-metrics "$run" --png "$PRETRAINED/$role/curves.png"
done

# The student finds its teacher beside it (`teacher`), as it was distilled.
models=(--model "$PRETRAINED/teacher" --label teacher --model "$PRETRAINED/student" --label student)
[ -n "$WAVEGLOW" ] && models+=(--model "$PRETRAINED/waveglow" --label waveglow)
[ -n "$SIGMA" ] && models+=(--sigma "$SIGMA")
"$PARAWAVE" evaluate "${models[@]}" --teacher "$PRETRAINED/teacher" --data "$DATA" --f0 both --report "$WORK/demo"
"$PARAWAVE" evaluate "${models[@]}" --teacher "$PRETRAINED/teacher" --data "$CHECK" --f0 both --report "$WORK/check"
cp "$WORK/demo/report.txt" "$PRETRAINED/report.txt"
cp "$WORK/demo/report.json" "$PRETRAINED/report.json"
cp "$WORK/check/report.txt" "$PRETRAINED/report-check.txt"
cp "$WORK/check/report.json" "$PRETRAINED/report-check.json"

rm -f "$EXAMPLES"/*
mkdir -p "$EXAMPLES"
for id in "$@"; do
    found=""
    for split in demo check; do
        data=$DATA
        [ $split = check ] && data=$CHECK
        if [ -d "$WORK/$split/$id" ]; then
            found=yes
            cp "$data/mel/$id.npy" "$EXAMPLES/$id.npy"
            for system in real griffin-lim "${roles[@]}"; do cp "$WORK/$split/$id/$system.wav" "$EXAMPLES/$id.$system.wav"; done
            cp "$WORK/$split/$id/spectrograms.png" "$EXAMPLES/$id.png"
        fi
    done
    [ -n "$found" ] || { echo "no utterance '$id' in the validation split of $DATA or $CHECK" >&2; exit 1; }
done
echo "shipped: $PRETRAINED (${roles[*]}, report.txt, report-check.txt); examples: $EXAMPLES"
