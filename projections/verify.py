"""`ledger verify`: recompute every person's hash chain from the stream (design.md §2).

One in-order pass over the stream (or one person's subject: `verify_person`,
for a supervisor checking a single chain without reading the whole ledger),
keeping only each person subject's head hash in memory; each commit is checked with `events.chain.first_break` from
that head. A subject's first break is reported and the subject is then left
alone (every later link would be judged against a forged head). Reference
subjects are not person chains and are skipped.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from events.chain import GENESIS, first_break, head_of
from projections.decode import person_key_of, stored_events
from projections.source import last_sequence, read_upto
from services.runtime.stream import PERSON_SUBJECT, STREAM, read_subject


class Break(msgspec.Struct, frozen=True):
    subject: str
    person_key: str
    seq: int
    index: int            # position of the event within its commit
    event_id: str
    expected_prev: str
    found_prev: str
    hash_ok: bool
    reason: str


class VerifyReport(msgspec.Struct):
    ok: bool
    last_seq: int
    messages: int = 0
    events: int = 0
    persons: int = 0
    breaks: list[Break] = []
    first_break: Break | None = None
    seconds: float = 0.0


def check_commit(subject: str, seq: int, data: bytes, head: str) -> tuple[str, Break | None, int]:
    """(new head, break or None, events checked) for one stored commit on a person subject."""
    key = person_key_of(subject) or ""
    try:
        events = stored_events(data)
        found = first_break(events, head)
    except msgspec.DecodeError as exc:
        return head, Break(subject, key, seq, 0, "", head, "", False, f"not a ledger commit: {exc}"), 0
    if found is not None:
        why = "previous hash does not match" if found.expected_prev != found.found_prev else "hash does not match"
        return head, Break(subject, key, seq, found.index, found.event_id, found.expected_prev, found.found_prev,
                           found.hash_ok, why), found.index + 1
    return (head_of(events[-1]) if events else head), None, len(events)


def _concluded(report: VerifyReport, started: float) -> VerifyReport:
    report.ok = not report.breaks
    report.first_break = report.breaks[0] if report.breaks else None
    report.seconds = round(time.perf_counter() - started, 3)
    return report


class Chains:
    """Every person subject's chain head as the stream is read in order, and each subject's first break
    (after which the subject is left alone: every later link would be judged against a forged head)."""

    def __init__(self) -> None:
        self.heads: dict[str, str] = {}
        self.breaks: list[Break] = []
        self.broken: set[str] = set()
        self.events = 0

    def add(self, subject: str, seq: int, data: bytes) -> None:
        """One stored message; reference subjects are not person chains and are skipped."""
        if person_key_of(subject) is None or subject in self.broken:
            return
        head, found, checked = check_commit(subject, seq, data, self.heads.get(subject, GENESIS))
        self.events += checked
        self.heads[subject] = head
        if found is not None:
            self.broken.add(subject)
            self.breaks.append(found)


async def verify_stream(js: Any, *, stream: str = STREAM, upto: int | None = None,
                        progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    started = time.perf_counter()
    last = upto if upto is not None else await last_sequence(js, stream)
    report = VerifyReport(ok=True, last_seq=last)
    chains = Chains()
    async for batch in read_upto(js, last, stream=stream, progress=progress):
        for raw in batch:
            report.messages += 1
            chains.add(raw.subject, raw.seq, raw.data)
    report.persons, report.events, report.breaks = len(chains.heads), chains.events, chains.breaks
    return _concluded(report, started)


async def verify_person(js: Any, key: str, *, stream: str = STREAM) -> VerifyReport:
    """One person's chain (by `person_key`), read from their subject alone."""
    started = time.perf_counter()
    subject = PERSON_SUBJECT.format(key)
    msgs = await read_subject(js, subject, stream=stream)
    report = VerifyReport(ok=True, last_seq=msgs[-1].seq if msgs else 0, messages=len(msgs),
                          persons=1 if msgs else 0)
    head = GENESIS
    for msg in msgs:
        head, found, checked = check_commit(subject, msg.seq, msg.data, head)
        report.events += checked
        if found is not None:
            report.breaks.append(found)
            break
    return _concluded(report, started)
