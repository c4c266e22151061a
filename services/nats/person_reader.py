"""A person's state rebuilt from their subject, every commit checked first: sealed by the ledger for that
subject and continuing the person's hash chain (ADR 0010). One that is not is never folded, never
skipped: `held` reports it and gives the error to raise (`LedgerHeld`)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from events.chain import Unsealed, links_from, read_sealed
from events.subjects import STREAM
from events.upcast import decode_commit
from services.integrity.findings import FORGED_MESSAGE
from services.nats.reads import read_subject
from services.policy.state import Person, apply_commit

Held = Callable[[str, int, str, str], Exception]     # (subject, seq, finding code, detail) -> error to raise


class PersonReader:
    def __init__(self, js: Any, seal_key: bytes, *, held: Held, stream: str = STREAM, timeout: float = 5.0,
                 metrics: Any = None):
        self.js, self._seal_key, self._held = js, seal_key, held
        self.stream, self.timeout, self.metrics = stream, timeout, metrics

    async def fold(self, psn_no: str | None, subject: str) -> Person:
        """The person from their whole subject (psn_no None: learn it from the events); LookupError if none."""
        started = time.perf_counter()
        msgs = await read_subject(self.js, subject, stream=self.stream, timeout=self.timeout)
        person = Person(psn_no) if psn_no is not None else None
        head = ""
        for msg in msgs:
            head = self.checked(subject, msg, head)
            commit = decode_commit(msg.data)
            if person is None:
                found = next((e.psn_no for e in commit.events if isinstance(getattr(e, "psn_no", None), str)), None)
                if found is None:
                    continue
                person = Person(found)
            apply_commit(person, commit, msg.seq)
        if person is None:                           # an empty subject and no psn_no: nothing to cache
            raise LookupError(f"no person on {subject}")
        if self.metrics is not None:
            self.metrics.person_loaded(len(msgs), time.perf_counter() - started)
        return person

    async def catch_up(self, person: Person, subject: str) -> None:
        """Fold what was appended to `subject` after `person.version`."""
        while True:
            version = person.version
            msgs = await read_subject(self.js, subject, stream=self.stream, after_seq=version, timeout=self.timeout)
            if person.version != version:
                continue                              # moved while we read: read again from the new version
            head = person.head_hash
            for msg in msgs:
                head = self.checked(subject, msg, head)
            for msg in msgs:
                apply_commit(person, decode_commit(msg.data), msg.seq)
            return

    def checked(self, subject: str, msg: Any, head: str) -> str:
        """The head after `msg` if the ledger sealed it for `subject` and it continues from `head`."""
        try:
            view = read_sealed(self._seal_key, subject, msg.data)
        except Unsealed as bad:
            raise self._held(subject, msg.seq, FORGED_MESSAGE, str(bad)) from None
        after = links_from(view.events, head)
        if after is None:
            raise self._held(subject, msg.seq, FORGED_MESSAGE, "does not continue the person's chain")
        return after
