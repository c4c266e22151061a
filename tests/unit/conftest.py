"""Unit tests: pure code and the one decision path with an in-memory store (no servers)."""
from __future__ import annotations

import pytest

from harness import Ledger


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()
