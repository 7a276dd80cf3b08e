#!/usr/bin/env bash
# The quality ladder: every candidate configuration (recipes/ladder/candidates.tsv) trained
# for the same CPU time on the same data from the same seeds (a teacher for T CPU-minutes,
# then a student for S; `train.max_cpu_minutes` / `distill.max_cpu_minutes` stop them
# cleanly, and CPU time is not spent while other programs hold the cores), then scored
# together by `parawave evaluate` on the whole validation split, with tracked and predicted
# F0, beside Griffin-Lim, and again on the unseen check corpus CHECK (data/check, which
# `make check-data` prepares from speakers no training utterance has). Results go to
# OUT/report and OUT/check-report (the table, report.json, WAVs, and per utterance one PNG
# stacking every candidate's spectrogram) and a section of QUALITY.md. Candidates whose
# overrides differ only in distill.* and student.* keys share one teacher run
# (OUT/teacher-HASH), trained once. Runs that exist are resumed, so a stopped ladder
# continues where it was.
#
#   scripts/quality-ladder.sh [-t T] [-s S] [-r RANKS] [-o OUT] [-d DATA] [-c CHECK] [-q QUALITY.md] [-l LABEL] NAME...
#
# With -r RANKS > 1 the training commands run as that many MPI ranks of one thread each
# (`mpirun --map-by slot:PE=1`), whose steps per CPU-minute do not change when other
# programs share the cores (threads that wait on each other do). Budgets are CPU-minutes
# of all threads and ranks: on 2 idle cores, -t 40 is 20 minutes. Screening:
# -t 40 -s 30 over every candidate; the full budget: -t 180 -s 120 over the best three. The
# learning rate is held constant after warm-up (a schedule over `steps` would not know the
# budget); the EMA weights are what is scored.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=40 S=30 RANKS=1 OUT="$ROOT/ladder" DATA="$ROOT/data/demo" CHECK="$ROOT/data/check" QUALITY="$ROOT/QUALITY.md" LABEL=""
CANDIDATES="$ROOT/recipes/ladder/candidates.tsv" RECIPE="$ROOT/recipes/demo/recipe.yaml"
PARAWAVE=${PARAWAVE:-"$ROOT/.build/release/parawave"}
while getopts "t:s:r:o:d:c:q:l:" option; do
    case $option in
        t) T=$OPTARG ;; s) S=$OPTARG ;; r) RANKS=$OPTARG ;; o) OUT=$OPTARG ;; d) DATA=$OPTARG ;; c) CHECK=$OPTARG ;; q) QUALITY=$OPTARG ;;
        l) LABEL=$OPTARG ;;
        *) sed -n 2,24p "$0" >&2; exit 2 ;;
    esac
done
train=("$PARAWAVE")
if [ "$RANKS" -gt 1 ]; then
    train=(mpirun -np "$RANKS" --map-by slot:PE=1 --mca btl_vader_single_copy_mechanism none)
    [ "$(id -u)" = 0 ] && train+=(--allow-run-as-root)
    train+=("$PARAWAVE")
fi
shift $((OPTIND - 1))
if [ $# -eq 0 ]; then
    echo "name the candidates to run, of: $(grep -v '^#' "$CANDIDATES" | cut -f1 | tr '\n' ' ')" >&2
    exit 2
fi
[ -x "$PARAWAVE" ] || { echo "build first (make build): $PARAWAVE is missing" >&2; exit 1; }
[ -f "$DATA/manifest.jsonl" ] || { echo "prepare the data first (make data): $DATA has no manifest" >&2; exit 1; }
[ -f "$CHECK/manifest.jsonl" ] || { echo "prepare the check corpus first (make check-data): $CHECK has no manifest" >&2; exit 1; }

overrides() {
    local line
    line=$(grep -v '^#' "$CANDIDATES" | awk -F'\t' -v name="$1" '$1 == name { print $2; found = 1 } END { exit !found }') \
        || { echo "unknown candidate '$1' (see $CANDIDATES)" >&2; exit 2; }
    for setting in $line; do printf -- '--set\n%s\n' "$setting"; done
}

# Every candidate's overrides are checked before any training: each is section.key=value
# with no spaces (a nested key is set on its own, distill.spectral_loss.weight=2).
for name in "$@"; do
    listed=$(overrides "$name") || exit 2
    for setting in $listed; do
        [ "$setting" = --set ] && continue
        [[ $setting =~ ^[a-z_]+(\.[a-z0-9_]+)+=[^[:space:]]+$ ]] || {
            echo "candidate '$name': '$setting' is not section.key=value (a value cannot hold spaces; set a nested key on its own, for example distill.spectral_loss.weight=2)" >&2
            exit 2
        }
    done
done

common=(--set train.steps=1000000 --set train.schedule=constant --set "train.max_cpu_minutes=$T"
        --set distill.steps=1000000 --set distill.schedule=constant --set "distill.max_cpu_minutes=$S")
# The teacher run of a candidate: one per distinct set of teacher-side overrides.
teacher_run() {
    local teacher_side key
    teacher_side=$(overrides "$1" | grep -v -e '^--set$' -e '^distill\.' -e '^student\.' | sort || true)
    key=$(printf '%s\n' "$teacher_side" | md5sum | cut -c1-8)
    echo "$OUT/teacher-$key"
}

models=() labels=() scored=" " trained=" "
for name in "$@"; do
    mapfile -t sets < <(overrides "$name")
    run="$OUT/$name" teacher=$(teacher_run "$name")
    mkdir -p "$run"
    if [[ $trained != *" $teacher "* ]]; then
        resume=()
        [ -f "$teacher/train-state.safetensors" ] && resume=(--resume)
        echo "== $name: teacher ($T CPU-minutes) ${sets[*]:-}"
        "${train[@]}" train-teacher --recipe "$RECIPE" --data "$DATA" --run "$teacher" "${common[@]}" "${sets[@]}" "${resume[@]}"
        [ -f "$teacher/ladder-name" ] || echo "$name" > "$teacher/ladder-name"
        trained+="$teacher "
    fi
    resume=()
    [ -f "$run/student/train-state.safetensors" ] && resume=(--resume)
    echo "== $name: student ($S CPU-minutes) of $(basename "$teacher")"
    "${train[@]}" distill --recipe "$RECIPE" --data "$DATA" --teacher "$teacher" --run "$run/student" "${common[@]}" "${sets[@]}" "${resume[@]}"
    if [[ $scored != *" $teacher "* ]]; then
        models+=(--model "$teacher") labels+=(--label "$(cat "$teacher/ladder-name")-teacher") scored+="$teacher "
    fi
    models+=(--model "$run/student") labels+=(--label "$name")
done

echo "== evaluate"
rm -rf "$OUT/report" "$OUT/check-report"
"$PARAWAVE" evaluate "${models[@]}" "${labels[@]}" --data "$DATA" --f0 both --report "$OUT/report"
"$PARAWAVE" evaluate "${models[@]}" "${labels[@]}" --data "$CHECK" --f0 both --report "$OUT/check-report"

# QUALITY.md: the table, the training speed and final validation of every run, the budget
# and the command, and the spectrogram grid of one utterance.
stage=${LABEL:-"T $T, S $S CPU-minutes"}
grid="docs/quality/ladder-$(echo "$stage" | tr -c 'A-Za-z0-9' '-' | tr -s '-' | sed 's/-$//').png"
mkdir -p "$ROOT/docs/quality"
first=$(ls -d "$OUT"/report/*/ | head -1)
cp "$first/spectrograms.png" "$ROOT/$grid"
{
    echo
    echo "## Ladder: $stage ($(date -u +%Y-%m-%d), $(nproc) cores)"
    echo
    echo "    scripts/quality-ladder.sh -t $T -s $S -r $RANKS $*"
    echo
    echo "The validation split of $(basename "$DATA"):"
    echo
    echo '```'
    cat "$OUT/report/report.txt"
    echo '```'
    echo
    echo "Unseen speakers and sentences ($(basename "$CHECK")):"
    echo
    echo '```'
    cat "$OUT/check-report/report.txt"
    echo '```'
    echo
    echo "| candidate | overrides | teacher steps | teacher samples/s | teacher val. bits | student steps | student samples/s | student val. KL |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    for name in "$@"; do
        python3 - "$OUT/$name" "$name" "$(grep -v '^#' "$CANDIDATES" | awk -F'\t' -v n="$name" '$1 == n { print $2 }')" \
            "$(teacher_run "$name")" <<'PY'
import json, sys
run, name, sets = sys.argv[1:4]
def last(path, key):
    value = None
    for line in open(path):
        row = json.loads(line)
        if key in row: value = (row["step"], row[key])
    return value
t, s = sys.argv[4] + "/metrics.jsonl", run + "/student/metrics.jsonl"
ts, tv, ss, sv = last(t, "samples_per_second"), last(t, "validation_bits"), last(s, "samples_per_second"), last(s, "validation_kl")
fmt = lambda v, f: f % v[1] if v else "-"
print(f"| {name} | {sets or '(recipes/demo)'} | {tv[0] if tv else '-'} | {fmt(ts, '%.0f')} | {fmt(tv, '%.3f')} | "
      f"{sv[0] if sv else '-'} | {fmt(ss, '%.0f')} | {fmt(sv, '%.4f')} |")
PY
    done
    echo
    echo "Spectrograms of $(basename "$first"), one row per system: [$grid]($grid)"
} >> "$QUALITY"
echo "wrote $OUT/report and a section of $QUALITY"
