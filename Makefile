# Every target sets itself up: a fresh machine with only Python needs nothing else.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-unit test-integration bench chaos replay-examples clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

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

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Every fault of issue 10 on real processes (benchmarks/chaos/, ADR 0014): <= 15 min on 2 cores,
# a table on the terminal, benchmarks/results/chaos.json. CHAOS_ARGS=--quick for a smoke run.
chaos: $(STAMP)
	$(BIN)/python -m benchmarks.chaos $(CHAOS_ARGS)

replay-examples: $(STAMP)
	$(BIN)/ledger replay examples/linfen-2022.jsonl
	$(BIN)/ledger replay examples/qinghai-2022.jsonl

clean:
	rm -rf $(VENV) .ledger tests/artifacts
