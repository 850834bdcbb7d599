# Salient: build, serve and test. On a fresh Debian 12 machine:
#   make serve   # install what is missing, fetch the model, build, serve on http://127.0.0.1:8080/
#   make test    # install what is missing, fetch the model, native + browser tests
# Every step skips what is already present, so reruns are quick.
SHELL := /bin/bash
PORT  ?= 8080
# Build cache outside the clone (a caller's CARGO_TARGET_DIR wins); tools on PATH.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/salient/target
# (node-20.20.2: only present where setup.sh had to add a newer node; keep in step with scripts/env.sh)
export PATH := $(CURDIR)/node_modules/.bin:$(HOME)/.cache/salient/node-20.20.2/bin:$(HOME)/.cargo/bin:$(PATH)
export TRUNK_SKIP_VERSION_CHECK := true

.PHONY: all setup model build serve test bench bench-quick clean help
all: build

help:
	@echo "make setup | model | build | serve [PORT=8080] | test | bench | bench-quick | clean"

setup:
	scripts/setup.sh

model:
	scripts/fetch-model.sh

include default-model.env
MODEL := $(MODEL_FILE)

build: setup model
	trunk build --release
	@# the page fetches models/$(MODEL) relative to itself: link it in unless the build copied it
	@mkdir -p dist/models && { [ -e dist/models/$(MODEL) ] || ln -s $(CURDIR)/models/$(MODEL) dist/models/$(MODEL); }

serve: build
	@echo "Salient: http://127.0.0.1:$(PORT)/   (Ctrl-C to stop)"
	python3 scripts/serve.py --dir dist $(PORT)

test: setup model
	scripts/test.sh

bench: setup model
	scripts/bench.sh

bench-quick: setup model
	BENCH_TIER=quick scripts/bench.sh

clean:
	rm -rf dist test-out bench-out
