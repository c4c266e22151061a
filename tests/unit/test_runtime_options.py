"""`RuntimeOptions.from_env`: LEDGER_PROJECTOR decides whether `ledger run` projects the read models itself."""
from __future__ import annotations

import pytest

from services.bootstrap import RuntimeOptions


def test_ledger_run_projects_unless_told_otherwise() -> None:
    assert RuntimeOptions.from_env({}).projector is True
    assert RuntimeOptions.from_env({"LEDGER_PROJECTOR": " ON "}).projector is True
    assert RuntimeOptions.from_env({"LEDGER_PROJECTOR": "off"}).projector is False


def test_a_projector_setting_that_is_neither_on_nor_off_stops_the_start() -> None:
    with pytest.raises(ValueError, match="LEDGER_PROJECTOR must be on or off, got 'no'"):
        RuntimeOptions.from_env({"LEDGER_PROJECTOR": "no"})
