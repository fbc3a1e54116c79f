# vlogger: every target sets itself up (a local .venv) on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

INPUT   ?= data/sample
OUT     ?= data/shards
WORKERS ?= 2
DATA    ?=

GEN      ?= data/generated
REF      ?=
EVAL_OUT ?= data/eval
RESULT   ?= $(EVAL_OUT)/results.json
NAME     ?=

.PHONY: setup test lint demo sample preprocess contact-sheet evaluate leaderboard bench clean

setup: $(STAMP)

# torch is pinned first so pip takes the CPU build on this disk, not a CUDA download.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[preprocess,eval,dev]"
	rm -f $(VENV)/.installed-*
	touch $@

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check vlogger tests benchmarks

# Embedded sample (or DATA=dir of your videos) -> shards -> contact sheet -> summary.
demo: setup
ifeq ($(DATA),)
	$(BIN)/vlogger make-sample --out data/sample --clips 3
	$(BIN)/vlogger preprocess --input data/sample --out data/demo/shards --workers $(WORKERS)
else
	$(BIN)/vlogger preprocess --input $(DATA) --out data/demo/shards --workers $(WORKERS)
endif
	$(BIN)/vlogger contact-sheet data/demo/shards --out data/demo/contact_sheet.png
	@echo "demo done: shards in data/demo/shards, contact sheet data/demo/contact_sheet.png"

sample: setup
	$(BIN)/vlogger make-sample --out $(INPUT)

preprocess: setup
	$(BIN)/vlogger preprocess --input $(INPUT) --out $(OUT) --workers $(WORKERS)

contact-sheet: setup
	$(BIN)/vlogger contact-sheet $(OUT) --out $(OUT)/contact_sheet.png

evaluate: setup
	$(BIN)/vlogger evaluate --generated $(GEN) $(if $(REF),--reference $(REF)) --out $(EVAL_OUT)

leaderboard: setup
	$(if $(NAME),$(BIN)/vlogger leaderboard add $(RESULT) --name $(NAME),$(BIN)/vlogger leaderboard show)

bench: setup
	$(BIN)/python -m benchmarks.preprocess
	$(BIN)/python -m benchmarks.evaluate

clean:
	rm -rf data/demo $(VENV)
