#!/usr/bin/env bash
# make fuzz: every parser of outside input under libFuzzer with AddressSanitizer, each for
# FUZZ_SECONDS (default 60), from seed corpora made of the test fixtures. Prints each
# target's executions and exits non-zero on the first crash, leak or timeout, whose input
# libFuzzer leaves in .build/fuzz/findings/TARGET. Such an input belongs in
# Tests/Fixtures/fuzz/TARGET/, where the suite replays it on every run.
#
#   scripts/fuzz.sh [TARGET...]      (targets: npy safetensors recipe manifest checkpoint audio)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(npy safetensors recipe manifest checkpoint audio)

swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING --product parawave-fuzz --build-path .build/fuzz
FUZZER=.build/fuzz/release/parawave-fuzz

seeds() {
    case $1 in
        npy) echo Tests/Fixtures/npy Tests/Fixtures/mel Tests/Fixtures/pitch ;;
        safetensors | checkpoint) echo Tests/Fixtures/engine Tests/Fixtures/models audio/pretrained/teacher audio/pretrained/student ;;
        recipe) echo recipes/demo recipes/demo-long recipes/ljspeech recipes/vctk recipes/overfit ;;
        manifest) echo Tests/Fixtures/manifest ;;
        audio) echo Tests/Fixtures/audio ;;
    esac
}

total=0
for target in "${TARGETS[@]}"; do
    corpus=.build/fuzz/corpus/$target findings=.build/fuzz/findings/$target
    mkdir -p "$corpus" "$findings"
    for folder in $(seeds "$target") "Tests/Fixtures/fuzz/$target"; do
        [ -d "$folder" ] || continue
        find "$folder" -maxdepth 1 -type f -size -2M -exec cp {} "$corpus/" \;
    done
    log=.build/fuzz/$target.log
    if ! PARAWAVE_FUZZ_TARGET=$target LSAN_OPTIONS="suppressions=$ROOT/scripts/fuzz-lsan.supp" "$FUZZER" "$corpus" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 \
        -rss_limit_mb=4096 -artifact_prefix="$findings/" -print_final_stats=1 > "$log" 2>&1; then
        tail -40 "$log"
        echo "fuzz $target: FAILED; the input is in $findings (log: $log)" >&2
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    total=$((total + runs))
    echo "fuzz $target: $runs executions in $SECONDS_EACH s, no crash"
done
echo "fuzz: $total executions in all, no crash"
