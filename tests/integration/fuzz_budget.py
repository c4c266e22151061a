"""A fuzz test's time, so `make fuzz` ends by itself without losing what it found.

Once its time is spent, a test is skipped at its next example (saying how many passed), but never
while it is reproducing a failure: a failure found in time is reported, not skipped. The long run
turns shrinking off, so reporting one takes a single replay.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

import pytest
from hypothesis import Phase
from hypothesis.errors import HypothesisException

LONG = "LEDGER_FUZZ_SECONDS" in os.environ        # `make fuzz`; `make test` runs the short defaults
PHASES = (Phase.explicit, Phase.reuse, Phase.generate) if LONG else tuple(Phase)


class Budget:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started: float | None = None

    def spent(self) -> bool:
        if self.started is None:
            self.started = time.monotonic()
        return time.monotonic() - self.started > self.seconds

    def _stop_if_spent(self, state: dict) -> None:
        if not state["failed"] and self.spent():
            pytest.skip(f"the fuzz run's {self.seconds:.0f}s are spent; {state['passed']} examples passed")

    def guard(self, body: Callable[..., Any]) -> Callable[..., Any]:
        """`body` as a hypothesis test body that stops the test once the budget is spent."""
        state = {"passed": 0, "failed": False}

        @wraps(body)
        def run(*args: Any, **kwargs: Any) -> Any:
            self._stop_if_spent(state)
            try:
                out = body(*args, **kwargs)
            except HypothesisException:     # hypothesis's own signals (e.g. an overrun draw) are not failures
                raise
            except Exception:
                state["failed"] = True
                raise
            state["passed"] += 1
            return out
        return run

    def guard_async(self, body: Callable[..., Any]) -> Callable[..., Any]:
        """`guard` for a coroutine test body."""
        state = {"passed": 0, "failed": False}

        @wraps(body)
        async def run(*args: Any, **kwargs: Any) -> Any:
            self._stop_if_spent(state)
            try:
                out = await body(*args, **kwargs)
            except HypothesisException:     # hypothesis's own signals (e.g. an overrun draw) are not failures
                raise
            except Exception:
                state["failed"] = True
                raise
            state["passed"] += 1
            return out
        return run
