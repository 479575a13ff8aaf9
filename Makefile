# wordcount — every command a user or CI types. `make help` lists them.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help install test test-fast lint bench bench-distributed redis-server

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 20

install: $(STAMP) ## create .venv with the package and dev tools
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

redis-server: ## make sure redis-server (>= 7.0) is on PATH (apt-get if missing)
	@bash scripts/ensure-redis.sh

.PHONY: browser
browser: ## make sure chromium + chromedriver (Debian's) are installed, for the dashboard's browser test
	@bash scripts/ensure-browser.sh

test: install redis-server browser ## the test suite, about 30 min (installs what it needs)
	$(BIN)/pytest -m 'not long'

.PHONY: test-long
test-long: install redis-server ## the long runs make test leaves out (the 10-run bounded soaks, more RedisRaft faults)
	$(BIN)/pytest -m long

test-fast: install redis-server ## tests without Docker
	$(BIN)/pytest -m 'not docker and not long'

lint: install ## ruff
	$(BIN)/ruff check src tests

bench: install ## tokenizer benchmark: naive vs serial vs threads vs processes (256 MiB)
	$(BIN)/wordcount bench tokenizer

bench-distributed: install redis-server ## wordcount run (Redis, 2 workers) vs processes (256 MiB)
	$(BIN)/wordcount bench distributed

.PHONY: soak
soak: install redis-server ## long randomized fault run (SOAK_RUNS=200)
	$(BIN)/python -m wordcount.lab.soak --runs $(or $(SOAK_RUNS),200) --seed $(or $(SOAK_SEED),1000) --path both $(SOAK_ARGS)

.PHONY: experiments
experiments: install redis-server ## every lab question: results/experiments/*.json, docs/EXPERIMENTS.md (SCALE=1: ~29 min here)
	$(BIN)/wordcount experiment --scale $(or $(SCALE),1) $(EXPERIMENTS)

.PHONY: peers
peers: ## E24's peers: .venv-peers with pinned Dask and PySpark, a JRE if missing (~300 MB)
	bash scripts/peers.sh

# images, up, chaos, logs, down: the compose cluster
include mk/cluster.mk

# raft-sources, raft-image, raft-bin (and `images`/`test` hooks): RedisRaft
include mk/raft.mk
