"""`ledger verify`: recompute every person's hash chain from the stream (design.md §2).

One in-order pass over the stream (or one person's subject: `verify_person`,
for a supervisor checking a single chain without reading the whole ledger),
keeping only each person subject's head hash in memory; each commit is checked with `events.chain.first_break` from
that head. A subject's first break is reported and the subject is then left
alone (every later link would be judged against a forged head). Every commit,
person or reference, must carry the ledger's seal for its subject: one that
does not is a `forged` break (ADR 0010). Reference subjects are not person
chains: only their seals are checked.

The chains say what the stream holds is what the ledger wrote; they cannot say
the stream still holds everything it once did. The read side's findings
(services/integrity) say that, and `integrity` adds them to the report: a report
with findings is not ok.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from events.chain import GENESIS, Unsealed, first_link_break, head_of, read_sealed
from projections.decode import person_key_of
from projections.source import read_upto
from services.integrity.findings import Finding
from events.subjects import PERSON_SUBJECT, STREAM
from services.nats.reads import read_subject


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
    missing: int = 0              # sequences up to last_seq the stream no longer holds (LEDGER never deletes)
    breaks: list[Break] = []
    first_break: Break | None = None
    seconds: float = 0.0
    findings: list[Finding] = []          # what the read side found the stream lost (services/integrity)
    acceptances: list[Any] = []           # losses an operator accepted (`ledger accept-loss`)
    restores: list[Any] = []              # `ledger restore` runs


def check_commit(subject: str, seq: int, data: bytes, head: str, seal_key: bytes) -> tuple[str, Break | None, int]:
    """(new head, break or None, events checked) for one stored commit on a person subject."""
    key = person_key_of(subject) or ""
    try:
        events = [bytes(r) for r in read_sealed(seal_key, subject, data).events]     # hashes checked there
        found = first_link_break(events, head)
    except Unsealed as bad:
        return head, Break(subject, key, seq, 0, "", head, "", False, f"forged: {bad}"), 0
    except msgspec.DecodeError as exc:
        return head, Break(subject, key, seq, 0, "", head, "", False, f"forged: not a ledger commit: {exc}"), 0
    if found is not None:
        why = "previous hash does not match" if found.expected_prev != found.found_prev else "hash does not match"
        return head, Break(subject, key, seq, found.index, found.event_id, found.expected_prev, found.found_prev,
                           found.hash_ok, why), found.index + 1
    return (head_of(events[-1]) if events else head), None, len(events)


def _seal_break(subject: str, seq: int, data: bytes, seal_key: bytes) -> Break | None:
    """A reference commit: only its seal is checked."""
    try:
        read_sealed(seal_key, subject, data)
    except Unsealed as bad:
        return Break(subject, "", seq, 0, "", "", "", False, f"forged: {bad}")
    return None


def _concluded(report: VerifyReport, started: float) -> VerifyReport:
    report.ok = not report.breaks and not report.missing
    report.first_break = report.breaks[0] if report.breaks else None
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def with_integrity(report: VerifyReport, findings: list[Finding], acceptances: list[Any] = (),
                   restores: list[Any] = ()) -> VerifyReport:
    """The report with the read side's findings: not ok while any stands."""
    report.findings, report.acceptances, report.restores = list(findings), list(acceptances), list(restores)
    report.ok = not report.breaks and not report.missing and not report.findings
    return report


class Chains:
    """Every person subject's chain head as the stream is read in order, and each subject's first break
    (after which the subject is left alone: every later link would be judged against a forged head).
    Reference commits are checked for their seal only."""

    def __init__(self, seal_key: bytes) -> None:
        self.seal_key = seal_key
        self.heads: dict[str, str] = {}
        self.breaks: list[Break] = []
        self.broken: set[str] = set()
        self.events = 0

    def add(self, subject: str, seq: int, data: bytes) -> None:
        if subject in self.broken:
            return
        if person_key_of(subject) is None:
            found = _seal_break(subject, seq, data, self.seal_key)
            if found is not None:
                self.breaks.append(found)
            return
        head, found, checked = check_commit(subject, seq, data, self.heads.get(subject, GENESIS), self.seal_key)
        self.events += checked
        self.heads[subject] = head
        if found is not None:
            self.broken.add(subject)
            self.breaks.append(found)


async def verify_stream(js: Any, *, seal_key: bytes, stream: str = STREAM, upto: int | None = None,
                        progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    started = time.perf_counter()
    state = (await js.stream_info(stream)).state
    last = upto if upto is not None else int(state.last_seq or 0)
    report = VerifyReport(ok=True, last_seq=last)
    chains = Chains(seal_key)
    async for batch in read_upto(js, last, stream=stream, held=int(state.messages or 0), progress=progress):
        for raw in batch:
            report.messages += 1
            chains.add(raw.subject, raw.seq, raw.data)
    report.persons, report.events, report.breaks = len(chains.heads), chains.events, chains.breaks
    report.missing = last - report.messages          # sequences the stream no longer holds (LEDGER never deletes)
    return _concluded(report, started)


async def verify_person(js: Any, key: str, *, seal_key: bytes, stream: str = STREAM) -> VerifyReport:
    """One person's chain (by `person_key`), read from their subject alone."""
    started = time.perf_counter()
    subject = PERSON_SUBJECT.format(key)
    msgs = await read_subject(js, subject, stream=stream)
    report = VerifyReport(ok=True, last_seq=msgs[-1].seq if msgs else 0, messages=len(msgs),
                          persons=1 if msgs else 0)
    head = GENESIS
    for msg in msgs:
        head, found, checked = check_commit(subject, msg.seq, msg.data, head, seal_key)
        report.events += checked
        if found is not None:
            report.breaks.append(found)
            break
    return _concluded(report, started)
