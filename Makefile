# clipgen — build, test, run. Every target installs what it needs when it is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := build

APT_PACKAGES := libopenblas-dev libsixel-dev libncurses-dev libpng-dev libjpeg-dev zlib1g-dev pkg-config \
	libsqlite3-dev tmux
VENV := .venv
PY := $(VENV)/bin/python
PYTHON_STAMP := $(VENV)/.installed-$(shell cat training/requirements*.txt 2>/dev/null | md5sum | cut -c1-8)
VOCAB_DIR := .cache/clip-vocab
# OpenBLAS picks its kernels when it loads; on AVX-512 CPUs SkylakeX doubles large GEMMs.
CORETYPE := $(shell grep -q avx512f /proc/cpuinfo 2>/dev/null && echo SkylakeX)
ifneq ($(CORETYPE),)
export OPENBLAS_CORETYPE ?= $(CORETYPE)
endif
SWIFT_TEST_FLAGS ?=

.PHONY: build debug studio install test test-swift test-python test-release fuzz fuzz-smoke fuzz-corpus deps apt python vocab fixtures bench lint format clean \
	model defaults eval ablation model-v2 eval-v2 gallery

## Install missing system packages (Debian).
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

## The Python virtual environment for the training kit and the PyTorch reference.
python: $(PYTHON_STAMP)
$(PYTHON_STAMP):
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip >/dev/null
	$(PY) -m pip install -q -r training/requirements.txt -r training/requirements-dev.txt
	@rm -f $(VENV)/.installed-*; touch $@

deps: apt

## Release build of the CLI: .build/release/clipgen
build: apt
	swift build -c release --product clipgen

debug: apt
	swift build

## Build the studio and open it on the built-in model (samples/model; the fixture model until
## that exists). STUDIO_FLAGS passes flags, e.g. STUDIO_FLAGS="--theme light --images blocks".
STUDIO_MODEL := $(firstword $(wildcard samples/model/model.json) $(wildcard Tests/ClipGenEngineTests/Fixtures/tiny_model/model.json))
STUDIO_FLAGS ?=
studio: apt
	swift build -c release --product clipgen-studio
	.build/release/clipgen-studio $(if $(STUDIO_MODEL),--model $(dir $(STUDIO_MODEL))) $(STUDIO_FLAGS)

## The real CLIP BPE vocabulary (from the open_clip wheel on PyPI) and open_clip's ids for the hard strings.
vocab: $(VOCAB_DIR)/expected_ids.json
$(VOCAB_DIR)/expected_ids.json: training/scripts/fetch_clip_vocab.py Tests/ClipGenEngineTests/TokenizerHardStrings.json | python
	$(PY) training/scripts/fetch_clip_vocab.py $(VOCAB_DIR)

## Regenerate the committed parity fixtures from the PyTorch reference.
fixtures: python
	cd training && $(abspath $(PY)) -m tools.make_fixtures

## Every test: Swift (engine parity, tokenizer, CLI, studio — including the studio's end-to-end
## test, which drives the real clipgen-studio binary in tmux) and the training kit.
test: apt python vocab lint test-swift test-python test-release fuzz-smoke

## A real full disk for the full-disk test (a 64 KiB tmpfs) and a read-only history (a tmpfs
## remounted read-only), where the machine lets us mount them.
test-swift:
	swift build --build-tests
	@full=$$(mktemp -d); \
	if mount -t tmpfs -o size=64k tmpfs "$$full" 2>/dev/null; then export CLIPGEN_FULL_DISK_DIR="$$full"; \
	else echo "note: cannot mount a small tmpfs here; the full-disk test is skipped"; fi; \
	ro=$$(mktemp -d); \
	if mount -t tmpfs -o size=1m tmpfs "$$ro" 2>/dev/null; then mkdir -p "$$ro/images"; \
	  python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('create table t(x)'); c.commit()" \
	    "$$ro/history.sqlite" && mount -o remount,ro "$$ro" && export CLIPGEN_READONLY_DIR="$$ro"; fi; \
	swift test --skip-build $(SWIFT_TEST_FLAGS); rc=$$?; \
	umount "$$full" 2>/dev/null; rmdir "$$full"; umount "$$ro" 2>/dev/null; rmdir "$$ro"; exit $$rc

## The release binaries (what people run) against hostile files.
test-release: build python
	$(PY) -m pytest -q Tests/Release

## Install both executables, the themes, the styles, the built-in model and shell completions:
## make install [PREFIX=/usr/local] [DESTDIR=...]. The installed studio and CLI find their files
## in PREFIX/share/clipgen.
PREFIX ?= /usr/local
install: build
	swift build -c release --product clipgen-studio
	install -d "$(DESTDIR)$(PREFIX)/bin" "$(DESTDIR)$(PREFIX)/share/clipgen/samples" \
	  "$(DESTDIR)$(PREFIX)/share/bash-completion/completions" "$(DESTDIR)$(PREFIX)/share/zsh/site-functions" \
	  "$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d"
	install -m 755 .build/release/clipgen .build/release/clipgen-studio "$(DESTDIR)$(PREFIX)/bin/"
	rm -rf "$(DESTDIR)$(PREFIX)/share/clipgen/themes" "$(DESTDIR)$(PREFIX)/share/clipgen/samples/model"
	cp -R themes "$(DESTDIR)$(PREFIX)/share/clipgen/"
	cp -R samples/model samples/styles.json samples/prompts.txt "$(DESTDIR)$(PREFIX)/share/clipgen/samples/"
	for exe in clipgen clipgen-studio; do \
	  .build/release/$$exe --generate-completion-script bash > "$(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$exe"; \
	  .build/release/$$exe --generate-completion-script zsh > "$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_$$exe"; \
	  .build/release/$$exe --generate-completion-script fish > "$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$$exe.fish"; \
	done
	@echo "installed clipgen and clipgen-studio in $(DESTDIR)$(PREFIX)/bin, their files in $(DESTDIR)$(PREFIX)/share/clipgen"

## Fuzzing: one libFuzzer + AddressSanitizer target per parser of outside bytes (Fuzz/README.md).
## make fuzz [FUZZ_SECONDS=600] [FUZZ_JOBS=2] [FUZZ_TARGETS="pickle image"]; make test runs each
## target for FUZZ_SMOKE_SECONDS so they keep building and the seeds keep passing.
FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= 2
FUZZ_SMOKE_SECONDS ?= 3
FUZZ_FLAGS := --product clipgen-fuzz --scratch-path .build/fuzz -Xswiftc -sanitize=fuzzer,address \
  -Xswiftc -DFUZZING -Xcc -fsanitize=fuzzer-no-link,address
## Optimised (about 5x the executions per second of a debug build) for real fuzzing.
fuzz:
	swift build -c release $(FUZZ_FLAGS)
	python3 Fuzz/run_fuzzers.py .build/fuzz/release/clipgen-fuzz --seconds $(FUZZ_SECONDS) \
	  --jobs $(FUZZ_JOBS) $(if $(FUZZ_TARGETS),--only $(FUZZ_TARGETS))
## A debug build (a third of the release build's time) for the smoke run inside make test.
fuzz-smoke:
	swift build $(FUZZ_FLAGS)
	python3 Fuzz/run_fuzzers.py .build/fuzz/debug/clipgen-fuzz --seconds $(FUZZ_SMOKE_SECONDS) \
	  --jobs 2 --out runs/fuzz-smoke
## Rewrite the seed corpora and dictionaries (never the crash-* regression inputs).
fuzz-corpus: python
	$(PY) training/scripts/fuzz_corpus.py

test-python: python
	$(PY) -m ruff check training
	$(PY) -m ruff check --config training/ruff.toml Tests/Release Fuzz
	$(PY) -m pytest -q training/tests

## The built-in model from nothing (world, stand-in CLIP, VQGAN, prior) -> samples/model.
## Two processes (torchrun, gloo) of one thread each: the fastest use of 2 cores.
## Resumable: run it again after an interruption and it continues; FRESH=1 starts over.
## The model's default sampling settings are then chosen by a sweep (make defaults).
MODEL_RUN ?= runs/model
model: python
	$(if $(FRESH),rm -rf $(MODEL_RUN))
	@start=$$(date +%s); \
	OMP_NUM_THREADS=1 $(PY) -m torch.distributed.run --standalone --nproc-per-node=2 \
	  -m training --threads 1 builtin --out $(MODEL_RUN) --export samples/model && \
	echo "make model: $$(( $$(date +%s) - start )) s"
	$(MAKE) --no-print-directory defaults

## Choose samples/model's default sampling settings (model.json "defaults") by a sweep on
## in-distribution validation prompts; the sweep goes to samples/model/training-log/.
defaults: python
	OMP_NUM_THREADS=1 $(PY) -m training.defaults --model samples/model

## The generation-2 built-in model (world v2: 64 px, one or two objects, backgrounds, styles;
## 16 x 16 tokens, 1024 codes; 256-token prior) -> samples/model-v2 (training/builtin_v2.py).
## Two processes of one thread each train it; the defaults sweep then runs in one process with
## both threads. Resumable: run it again after an interruption; FRESH=1 starts over.
## `make model` keeps building the generation-1 model until the v2 model is trained and committed.
MODEL_V2_RUN ?= runs/model-v2
MODEL_V2 ?= samples/model-v2
model-v2: python
	$(if $(FRESH),rm -rf $(MODEL_V2_RUN))
	@start=$$(date +%s); \
	OMP_NUM_THREADS=1 $(PY) -m torch.distributed.run --standalone --nproc-per-node=2 \
	  -m training.builtin_v2 --threads 1 --no-sweep --out $(MODEL_V2_RUN) --export $(MODEL_V2) && \
	$(PY) -m training.builtin_v2 --threads 2 --out $(MODEL_V2_RUN) --export $(MODEL_V2) && \
	echo "make model-v2: $$(( $$(date +%s) - start )) s"

## The v2 model through the CLI with its own defaults: runs/eval-v2/report.{json,html}.
eval-v2: python build
	$(PY) -m training.evaluate_v2 --model $(MODEL_V2) --out runs/eval-v2 --cli .build/release/clipgen $(EVAL_FLAGS)

## A labelled grid of prompts (in-distribution and held-out) through the CLI -> docs/gallery.png.
GALLERY_MODEL ?= samples/model
gallery: python build
	$(PY) -m training.gallery --model $(GALLERY_MODEL) --out docs/gallery.png --cli .build/release/clipgen

## Short priors varying lambda, noise and guidance (read by make eval's report).
ablation: python
	$(PY) -m training --threads 1 ablation --model samples/model --out runs/ablation --steps 900 --n 4

## Generate through the CLI with the model's own defaults, judge: runs/eval/report.json +
## report.html (ablation included). EVAL_FLAGS overrides settings, e.g. EVAL_FLAGS="--guidance 1".
EVAL_FLAGS ?=
eval: python build
	@test -f runs/ablation/ablation.json || $(MAKE) --no-print-directory ablation
	$(PY) -m training --threads 1 eval --model samples/model --out runs/eval $(EVAL_FLAGS)

## The engine against the PyTorch reference on the same random weights, in one run:
## runs/bench/bench.json (PRESET=builtin|gpt2-medium, BATCH=candidates sampled together).
PRESET ?= builtin
BATCH ?= 8
BENCH_THREADS ?= 2
bench: build python
	$(PY) training/tools/bench_torch.py --preset $(PRESET) --batch $(BATCH) \
	  --threads $(BENCH_THREADS) --clipgen .build/release/clipgen --out runs/bench

lint: python
	swift format lint --strict --recursive Sources Tests Package.swift
	$(PY) -m ruff check training
	$(PY) -m ruff check --config training/ruff.toml Tests/Release Fuzz

format: python
	swift format --in-place --recursive Sources Tests Package.swift
	$(PY) -m ruff format training

clean:
	rm -rf .build runs
