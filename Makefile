# Every target sets itself up: a fresh machine with only Python needs nothing else.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-unit test-integration fuzz bench replay-examples clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/ledger run

test: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests

test-unit: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

test-integration: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/integration

# The long fuzz: schemathesis on every HTTP operation x role, then hypothesis messages on the NATS
# subjects, each until its time is spent (400 s + 90 s; tests/integration/fuzz_budget.py), so it ends
# by itself; `timeout` is only a backstop.
fuzz: $(STAMP)
	LEDGER_FUZZ_EXAMPLES=1000 LEDGER_FUZZ_SECONDS=400 LEDGER_FUZZ_NATS_EXAMPLES=5000 LEDGER_FUZZ_NATS_SECONDS=90 \
	  timeout --signal=INT --kill-after=30 600 $(BIN)/pytest -q -p no:cacheprovider -rs \
	  tests/integration/test_http_fuzz.py tests/integration/test_nats_fuzz.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks

replay-examples: $(STAMP)
	$(BIN)/ledger replay examples/linfen-2022.jsonl
	$(BIN)/ledger replay examples/qinghai-2022.jsonl

clean:
	rm -rf $(VENV) .ledger
