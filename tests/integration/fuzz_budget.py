"""A fuzz test's time, so `make fuzz` ends by itself without losing what it found.

Once its time is spent, a test is skipped at its next example (saying how many passed), but never
while it is reproducing a failure: a failure found in time is reported, not skipped. The check runs
after the example's draws (hypothesis takes a test that stops drawing early for a flaky strategy).
The long run turns shrinking off, so reporting a failure takes a single replay.
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import pytest
from hypothesis import Phase
from hypothesis.errors import HypothesisException

LONG = "LEDGER_FUZZ_SECONDS" in os.environ        # `make fuzz`; `make test` runs the short defaults
PHASES = (Phase.explicit, Phase.reuse, Phase.generate) if LONG else tuple(Phase)


class Budget:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started: float | None = None
        self.passed = 0
        self.failed = False

    @contextlib.contextmanager
    def example(self) -> Iterator[None]:
        """Around one example's calls and checks, after its draws."""
        if self.started is None:
            self.started = time.monotonic()
        if not self.failed and time.monotonic() - self.started > self.seconds:
            pytest.skip(f"the fuzz test's {self.seconds:.0f}s are spent; {self.passed} examples passed")
        try:
            yield
        except HypothesisException:          # hypothesis's own signals (e.g. an overrun draw) are not failures
            raise
        except Exception:
            self.failed = True
            raise
        self.passed += 1
