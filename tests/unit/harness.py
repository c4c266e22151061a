"""Drive the one decision path (`Handler.handle` over a `MemoryStore`, as `ledger replay` does) synchronously.

The memory store never waits on I/O, so a handler coroutine runs to its end on
the first step; stepping it by hand keeps each message at a few microseconds of
overhead instead of an event loop per call.
"""
from __future__ import annotations

import json
from collections.abc import Coroutine
from decimal import Decimal
from functools import cache
from typing import Any

from builders import raw
from events.results import encode_result
from services.cli.replay import replay_handler
from services.policy.pack import PackSet
from services.policy.state import Person, PersonYear


@cache
def packs() -> PackSet:
    return PackSet.from_dir()


def with_income(year: int, income: str, pack_id: str = "linfen-2022") -> PackSet:
    """The shipped packs with one more year of the previous-year income figure (policy.md §12)."""
    import msgspec
    out = []
    for p in packs().packs:
        if p.id == pack_id and p.prev_year_income is not None:
            by_year = {**p.prev_year_income.by_year, str(year): Decimal(income)}
            p = msgspec.structs.replace(p, prev_year_income=msgspec.structs.replace(p.prev_year_income,
                                                                                     by_year=by_year))
        out.append(p)
    return PackSet(out)


def run_to_end(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the handler waited on I/O; the memory store never should")


def D(value: str | int) -> Decimal:
    return Decimal(value)


class Ledger:
    """A fresh in-memory ledger: `send` a message dict (or raw bytes), get its results as dicts."""

    def __init__(self, pack_set: PackSet | None = None) -> None:
        self.handler = replay_handler(pack_set or packs())
        self.store = self.handler.store

    def send_raw(self, data: bytes) -> list[dict]:
        results = run_to_end(self.handler.handle(data, source="test"))
        return [json.loads(encode_result(r)) for r in results]

    def send(self, *messages: dict) -> list[dict]:
        """All results of all messages, in order."""
        out: list[dict] = []
        for message in messages:
            out.extend(self.send_raw(raw(message)))
        return out

    def one(self, message: dict) -> dict:
        """The single result of one message."""
        results = self.send(message)
        assert len(results) == 1, results
        return results[0]

    def person(self, psn_no: str) -> Person:
        return self.store.persons[psn_no]

    def year(self, psn_no: str, year: int = 2022) -> PersonYear:
        return self.store.persons[psn_no].year(year)


def amounts(result: dict, *names: str) -> tuple[Decimal, ...]:
    return tuple(Decimal(result[n]) for n in names)


def line(result: dict, rule_id: str) -> dict:
    """The one line of `result` paid under `rule_id`."""
    found = [l for l in result["lines"] if l["rule_id"] == rule_id]
    assert len(found) == 1, (rule_id, result["lines"])
    return found[0]


def rule_ids(result: dict) -> list[str]:
    return [l["rule_id"] for l in result["lines"]]


def balanced(result: dict) -> bool:
    """integration.md §2: medfee_sumamt = hifp + oth + hifmi + maf + hosp + psn."""
    total, *parts = amounts(result, "medfee_sumamt", "hifp_pay", "oth_pay", "hifmi_pay", "maf_pay",
                            "hosp_part_amt", "psn_part_amt")
    return total == sum(parts) and all(p >= 0 for p in parts)
