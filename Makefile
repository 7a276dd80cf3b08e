# Parawave: the two commands are `make demo` and `make test`. Both install their own
# system dependencies (Debian packages) and build in release mode.

SWIFT ?= swift
BUILD_PACKAGES := libsndfile1-dev libfftw3-dev libopenblas-dev libsoxr-dev libpng-dev pkg-config
DEMO_PACKAGES := klettres-data pocketsphinx-testdata codec2-examples
BIN := .build/release/parawave
RECIPE := recipes/demo/recipe.yaml
DATA := data/demo

.PHONY: all deps demo-deps build test demo bench clean fixtures

all: build

deps:
	@scripts/install-deps.sh $(BUILD_PACKAGES)

demo-deps: deps
	@scripts/install-deps.sh $(DEMO_PACKAGES)

build: deps
	$(SWIFT) build -c release

## test: every test, against the release build.
test: build
	$(SWIFT) test -c release

## demo: the whole flow on real speech from Debian's packages.
demo: demo-deps build
	@if [ -f $(DATA)/manifest.jsonl ]; then \
	  echo "$(DATA) already prepared (delete it to prepare again)"; \
	else \
	  $(BIN) prepare --recipe $(RECIPE) --out $(DATA); \
	fi
	@echo
	@echo "demo outputs:"
	@echo "  data directory:        $(DATA) (manifest.jsonl, stats.json, prepare.json)"
	@echo "  log-mel features:      $(DATA)/mel/*.npy ($$(ls $(DATA)/mel | wc -l) files)"
	@echo "  spectrogram previews:  $$(ls $(DATA)/png/*.png | tr '\n' ' ')"

## bench: speed figures for BENCHMARKS.md.
bench: build
	.build/release/parawave-bench

## fixtures: regenerate the golden test fixtures (needs numpy, librosa 0.11, soundfile).
fixtures:
	python3 scripts/make_fixtures.py

clean:
	rm -rf .build
