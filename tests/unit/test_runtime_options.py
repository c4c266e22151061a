"""`RuntimeOptions.from_env` (LEDGER_PROJECTOR, LEDGER_GC_YOUNG) and the collector settled once (ADR 0014)."""
from __future__ import annotations

import gc
import weakref

import pytest

from services.compose import ledger as bootstrap
from services.runtime.options import RuntimeOptions


def test_ledger_run_projects_unless_told_otherwise() -> None:
    assert RuntimeOptions.from_env({}).projector is True
    assert RuntimeOptions.from_env({"LEDGER_PROJECTOR": " ON "}).projector is True
    assert RuntimeOptions.from_env({"LEDGER_PROJECTOR": "off"}).projector is False


def test_a_projector_setting_that_is_neither_on_nor_off_stops_the_start() -> None:
    with pytest.raises(ValueError, match="LEDGER_PROJECTOR must be on or off, got 'no'"):
        RuntimeOptions.from_env({"LEDGER_PROJECTOR": "no"})


def test_the_young_generation_is_tuned_by_ledger_gc_young() -> None:
    assert RuntimeOptions.from_env({}).gc_young == 50_000
    assert RuntimeOptions.from_env({"LEDGER_GC_YOUNG": "700"}).gc_young == 700
    with pytest.raises(ValueError, match="LEDGER_GC_YOUNG must be integers"):
        RuntimeOptions.from_env({"LEDGER_GC_YOUNG": "0.25"})
    with pytest.raises(ValueError, match="must be positive"):
        RuntimeOptions.from_env({"LEDGER_GC_YOUNG": "0"})


def test_the_collector_is_settled_once_and_nothing_is_frozen_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """What start-up built is frozen once; what is alive later (a decision in flight) stays collectable."""
    threshold = gc.get_threshold()
    monkeypatch.setattr(bootstrap, "_gc_settled", False)
    try:
        bootstrap.settle_gc(12_345)
        frozen = gc.get_freeze_count()
        assert frozen > 0 and gc.get_threshold() == (12_345, *threshold[1:])

        node = _Node()
        node.me = node                       # a cycle, alive at the second call and garbage after it
        gone = weakref.ref(node)
        bootstrap.settle_gc(999)
        assert gc.get_freeze_count() == frozen and gc.get_threshold()[0] == 12_345
        del node
        gc.collect()
        assert gone() is None                # collected: a frozen cycle would have outlived it
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


class _Node:
    me: object = None
