"""The decision core, built one way for every user: packs → engine; a store, a clock and ids → the Handler.

The servers (`bootstrap`), `ledger replay`, the audit (one per pack version), the tests and the
benchmarks all call `build_handler`; only the store, the clock and the ids differ between them.
"""
from __future__ import annotations

import datetime as dt
import itertools
import secrets
from collections.abc import Callable

from services.adjudicator.handler import Handler, utc_now
from services.adjudicator.store import Store
from services.memory.store import MemoryStore
from services.policy.engine import Engine
from services.policy.pack import PackSet


def build_handler(packs: PackSet, store: Store | None = None, *, clock: Callable[[], dt.datetime] = utc_now,
                  new_id: Callable[[], str] | None = None, engine: Engine | None = None) -> Handler:
    """The one decision path over `store` (a fresh `MemoryStore` when none). ``engine``: one already built
    on `packs` (a process shares its own), or a patched one in a test."""
    return Handler(engine or Engine(packs), store if store is not None else MemoryStore(), clock=clock,
                   new_id=new_id or correlation_ids())


def correlation_ids() -> Callable[[], str]:
    """Unique ids for inbound messages: 64 random bits per process, then a counter (cheaper than uuid4)."""
    prefix = secrets.token_hex(8)
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):012x}"


def counted_ids(prefix: str) -> Callable[[], str]:
    """``prefix-1``, ``prefix-2``, …: ids that make a replay's output the same on every run."""
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter)}"
