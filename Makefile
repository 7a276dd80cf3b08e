# Parawave: the two commands are `make demo` and `make test`. Both install their own
# system dependencies (Debian packages) and build in release mode.

SWIFT ?= swift
BUILD_PACKAGES := libsndfile1-dev libfftw3-dev libopenblas-dev libsoxr-dev libpng-dev zlib1g-dev libdnnl-dev libopenmpi-dev openmpi-bin pkg-config
DEMO_PACKAGES := klettres-data pocketsphinx-testdata codec2-examples
BIN := .build/release/parawave
# Swift compiles for baseline x86-64 (SSE2) unless told otherwise. On CPUs with AVX2 and FMA
# (Haswell and later) the toolkit's own vector loops (the gated unit's tanh and sigmoid, the
# sums, the matrix-vector products of generation) run about twice as fast compiled for them;
# OpenBLAS and FFTW pick their kernels at run time either way.
CPU_FLAGS := $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo 2>/dev/null && echo "-Xswiftc -target-cpu -Xswiftc haswell")
BUILD_FLAGS := -c release $(CPU_FLAGS)
# The demo trains as data-parallel MPI ranks: 2 where the machine has 2 cores or more, each
# bound to half of them, measured 1.2-1.5x faster than one process with as many threads
# (BENCHMARKS.md). RANKS=1 trains in one process without mpirun.
CORES := $(shell nproc 2>/dev/null || echo 1)
RANKS ?= $(shell [ $(CORES) -ge 2 ] && echo 2 || echo 1)
MPIRUN := mpirun -np $(RANKS) --map-by slot:PE=$(shell echo $$(( $(CORES) / $(RANKS) ))) --mca btl_vader_single_copy_mechanism none \
  $(shell [ "$$(id -u)" = 0 ] && echo --allow-run-as-root)
TRAIN := $(if $(filter 1,$(RANKS)),$(BIN),$(MPIRUN) $(BIN))
RECIPE := recipes/demo/recipe.yaml
DATA := data/demo
# Speakers and sentences that no demo training utterance has (pocketsphinx-testdata's read
# English), all of them evaluation: the check that quality is not tuned to one split.
CHECK := data/check
CHECK_SOURCES := /usr/share/pocketsphinx/test/data
RUNS := runs/demo
# The models trained with recipes/demo-long that ship with the repository.
PRETRAINED := audio/pretrained

.PHONY: all deps demo-deps build test test-kernels demo check-data soak fuzz bench clean fixtures

all: build

deps:
	@scripts/install-deps.sh $(BUILD_PACKAGES)

demo-deps: deps
	@scripts/install-deps.sh $(DEMO_PACKAGES)

build: deps
	$(SWIFT) build $(BUILD_FLAGS)

## test: every test, against the release build.
test: build
	$(SWIFT) test $(BUILD_FLAGS)

## test-kernels: the suite once under each OpenBLAS kernel the CPU runs (OPENBLAS_CORETYPE),
## so that no verdict depends on the kernel's rounding (about 5 minutes per kernel).
test-kernels: build
	BUILD_FLAGS="$(BUILD_FLAGS)" scripts/test-kernels.sh

## demo: the whole flow on real speech from Debian's packages. Each step is skipped when
## its output is complete, and a killed training run continues where it stopped.
demo: demo-deps build check-data
	@if [ -f $(DATA)/manifest.jsonl ]; then \
	  echo "$(DATA) already prepared (delete it to prepare again)"; \
	else \
	  $(BIN) prepare --recipe $(RECIPE) --out $(DATA); \
	fi
	@if [ -f $(RUNS)/teacher/train-state.safetensors ]; then \
	  $(TRAIN) train-teacher --recipe $(RECIPE) --data $(DATA) --run $(RUNS)/teacher --resume; \
	else \
	  $(TRAIN) train-teacher --recipe $(RECIPE) --data $(DATA) --run $(RUNS)/teacher; \
	fi
	@if [ -f $(RUNS)/student/train-state.safetensors ]; then \
	  $(TRAIN) distill --recipe $(RECIPE) --data $(DATA) --teacher $(RUNS)/teacher --run $(RUNS)/student --resume; \
	else \
	  $(TRAIN) distill --recipe $(RECIPE) --data $(DATA) --teacher $(RUNS)/teacher --run $(RUNS)/student; \
	fi
	@if [ -f $(RUNS)/waveglow/train-state.safetensors ]; then \
	  $(TRAIN) train-waveglow --recipe $(RECIPE) --data $(DATA) --run $(RUNS)/waveglow --resume; \
	else \
	  $(TRAIN) train-waveglow --recipe $(RECIPE) --data $(DATA) --run $(RUNS)/waveglow; \
	fi
	@mkdir -p $(RUNS)/samples; id=$$(grep '"split":"validation"' $(DATA)/manifest.jsonl | sed 's/.*"id":"\([^"]*\)".*"seconds":\([0-9.]*\).*/\2 \1/' | sort -rn | head -1 | cut -d' ' -f2); \
	  $(BIN) render --model $(RUNS)/teacher --wav $(DATA)/audio/$$id.wav --out $(RUNS)/samples/teacher-$$id.wav \
	    --png $(RUNS)/samples/teacher-$$id.png && \
	  $(BIN) render --model $(RUNS)/student --wav $(DATA)/audio/$$id.wav --out $(RUNS)/samples/student-$$id.wav \
	    --png $(RUNS)/samples/student-$$id.png && \
	  $(BIN) render --model $(RUNS)/student --mel $(DATA)/mel/$$id.npy --out $(RUNS)/samples/student-from-mel-$$id.wav \
	    --png $(RUNS)/samples/student-from-mel-$$id.png && \
	  $(BIN) render --model $(RUNS)/waveglow --wav $(DATA)/audio/$$id.wav --out $(RUNS)/samples/waveglow-$$id.wav \
	    --png $(RUNS)/samples/waveglow-$$id.png && \
	  cp $(DATA)/audio/$$id.wav $(RUNS)/samples/real-$$id.wav
	$(BIN) evaluate --model $(RUNS)/teacher --model $(RUNS)/student --model $(RUNS)/waveglow --teacher $(RUNS)/teacher --data $(DATA) \
	  --f0 both --report $(RUNS)/report
	$(BIN) evaluate --model $(PRETRAINED)/teacher --model $(PRETRAINED)/student --model $(PRETRAINED)/waveglow --sigma 0.8 \
	  --data $(DATA) --report $(RUNS)/report-pretrained
	$(BIN) evaluate --model $(RUNS)/student --data $(CHECK) --f0 both --report $(RUNS)/report-check
	$(BIN) plot-metrics $(RUNS)/teacher --png $(RUNS)/teacher/curves.png
	$(BIN) plot-metrics $(RUNS)/student --png $(RUNS)/student/curves.png
	$(BIN) plot-metrics $(RUNS)/waveglow --png $(RUNS)/waveglow/curves.png
	@echo
	@echo "demo outputs:"
	@echo "  data directory:        $(DATA) (manifest.jsonl, stats.json, prepare.json, f0/, png/)"
	@echo "  teacher run:           $(RUNS)/teacher (model.safetensors, metrics.jsonl, recipe.yaml, curves.png)"
	@echo "  student run:           $(RUNS)/student (model.safetensors, metrics.jsonl, recipe.yaml, curves.png)"
	@echo "  WaveGlow run:          $(RUNS)/waveglow (the same)"
	@echo "  evaluation:            $(RUNS)/report (report.txt, report.json; per utterance: real, griffin-lim, teacher, student, waveglow WAVs + spectrograms.png;"
	@echo "                         each model twice: F0 tracked from the recording, and predicted from the mel as NAME-predicted-f0)"
	@echo "  the shipped models:    $(RUNS)/report-pretrained (the same for $(PRETRAINED)/teacher, student and waveglow)"
	@echo "  unseen speakers:       $(RUNS)/report-check (the student on $(CHECK), read sentences no training utterance has)"
	@echo "  a validation utterance rendered by the teacher (autoregressive), the student and WaveGlow (parallel), the student from the"
	@echo "  mel alone (F0 from its pitch predictor), and the real one:"
	@ls $(RUNS)/samples/*.wav $(RUNS)/samples/*.png | sed 's/^/    /'

## check-data: the unseen-speaker check corpus, every utterance in its validation split.
check-data: demo-deps build
	@if [ -f $(CHECK)/manifest.jsonl ]; then \
	  echo "$(CHECK) already prepared"; \
	else \
	  $(BIN) prepare --recipe $(RECIPE) --set data.validation_fraction=1 --out $(CHECK) $(CHECK_SOURCES); \
	fi

## soak: a small training run SIGKILLed at 20 seeded random moments and resumed each time
## must end bit-identical to the run never interrupted (a few minutes; not part of `test`).
soak: demo-deps build
	scripts/soak.sh

## fuzz: the parsers of outside input under libFuzzer and AddressSanitizer, FUZZ_SECONDS
## (60) each; says how many executions ran.
fuzz: deps
	scripts/fuzz.sh

## bench: speed figures for BENCHMARKS.md.
bench: build
	.build/release/parawave-bench

## fixtures: regenerate the golden test fixtures (needs numpy, librosa 0.11, soundfile).
fixtures:
	python3 scripts/make_fixtures.py

clean:
	rm -rf .build
