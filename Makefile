# Every target sets itself up: a fresh machine with only Python needs nothing else.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: install run test test-unit test-integration fuzz bench chaos soak replay-examples clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $(BENCH_STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/ledger run

test: $(STAMP) browser
	$(BIN)/pytest -q -p no:cacheprovider tests

# The console's browser tests drive Debian's chromium (never a browser a tool downloads). Installed here
# when missing and we can (root, apt); nothing happens when it is present. Without it those tests skip,
# or fail when CI=true. The CJK font is only for readable screenshots.
BROWSER_DEBS := chromium chromium-driver fonts-wqy-microhei
browser:
	@if ! dpkg -s $(BROWSER_DEBS) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $(BROWSER_DEBS) for the console's browser tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_DEBS) >/dev/null; } \
	      || echo "apt-get could not install $(BROWSER_DEBS): the browser tests will say so"; \
	  else echo "chromium is missing and cannot be installed here (needs root and apt)"; fi; \
	fi

test-unit: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

test-integration: $(STAMP) browser
	$(BIN)/pytest -q -p no:cacheprovider tests/integration

# The long fuzz: schemathesis on every HTTP operation x role, then hypothesis messages on the NATS
# subjects, each until its time is spent (400 s + 90 s; tests/integration/fuzz_budget.py), so it ends
# by itself; `timeout` is only a backstop.
fuzz: $(STAMP)
	LEDGER_FUZZ_EXAMPLES=1000 LEDGER_FUZZ_SECONDS=400 LEDGER_FUZZ_NATS_EXAMPLES=5000 LEDGER_FUZZ_NATS_SECONDS=90 \
	  timeout --signal=INT --kill-after=30 600 $(BIN)/pytest -q -p no:cacheprovider -rs \
	  tests/integration/test_http_fuzz.py tests/integration/test_nats_fuzz.py

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks

# Every fault of issue 10 on real processes (benchmarks/chaos/, ADR 0014): <= 15 min on 2 cores,
# a table on the terminal, benchmarks/results/chaos.json. CHAOS_ARGS=--quick for a smoke run.
chaos: $(STAMP)
	$(BIN)/python -m benchmarks.chaos $(CHAOS_ARGS)

# The soak of issue 10.6 (benchmarks/soak.py, ADR 0014): settlements through one `ledger run` for at most
# SOAK_SECONDS (default 1200) or SOAK_SETTLEMENTS (default 1,000,000), RSS and ledger_gc_frozen_objects sampled
# each second; benchmarks/results/soak.json. SOAK_GC_YOUNG sets LEDGER_GC_YOUNG (ADR 0014).
soak: $(STAMP)
	timeout --signal=INT --kill-after=60 $$(( $${SOAK_SECONDS:-1200} + 300 )) $(BIN)/python -m benchmarks.soak $(SOAK_ARGS)

replay-examples: $(STAMP)
	$(BIN)/ledger replay examples/linfen-2022.jsonl
	$(BIN)/ledger replay examples/qinghai-2022.jsonl

clean:
	rm -rf $(VENV) .ledger tests/artifacts
