"""Global keys (``setl_id``, ``grant_id``) claimed on ``ledger.ref.key.<hash>``: one person per key (ADR 0013).

A claim is one sealed `KeyClaimed` commit stored, expecting sequence 0 on its subject, just before
the commit of the decision that takes the key: the second person to claim a key is refused (10071)
before anything of theirs is stored, and is answered ``setl_id_conflict`` after a reload
(integration.md §2 "Keys are global"). Holders seen are remembered, at most `size` of them.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from events import ledger as ev
from events.chain import Unsealed, encode_sealed, read_sealed, seal_stored
from events.subjects import KEY_SUBJECT, STREAM
from events.upcast import decode_commit
from services.nats.reads import read_subject
from services.runtime.secrets import keyed_hash

Forged = Callable[[str, int, str], Exception]      # (subject, seq, why) -> the error to raise


class KeyClaims:
    def __init__(self, js: Any, secret: bytes, seal_key: bytes, *, size: int, stream: str = STREAM,
                 timeout: float = 5.0, forged: Forged):
        self.js, self._secret, self._seal_key = js, secret, seal_key
        self.size, self.stream, self.timeout, self._forged = size, stream, timeout, forged
        self._holders: OrderedDict[str, str] = OrderedDict()   # key subject → person_key, seen claimed

    def subject(self, key: tuple[str, str]) -> str:
        return KEY_SUBJECT.format(keyed_hash(self._secret, f"{key[0]}:{key[1]}"))

    def held_by(self, key: tuple[str, str]) -> str | None:
        """The holder this process has seen claim `key`, if any."""
        return self._holders.get(self.subject(key))

    async def holder(self, key: tuple[str, str], fresh: bool) -> str | None:
        """From what this process has seen claimed; `fresh` (after a conflict) reads the key's subject."""
        subject = self.subject(key)
        holder = self._holders.get(subject)
        if holder is None and fresh:
            msgs = await read_subject(self.js, subject, stream=self.stream, timeout=self.timeout)
            for msg in msgs[:1]:                  # a claim the ledger did not seal is a forgery, not a holder
                try:
                    read_sealed(self._seal_key, subject, msg.data)
                except Unsealed as bad:
                    raise self._forged(subject, msg.seq, str(bad)) from None
            claims = [e for m in msgs[:1] for e in decode_commit(m.data).events if isinstance(e, ev.KeyClaimed)]
            if claims:
                holder = claims[0].person_key
                self.remember(subject, holder)
        return holder

    def remember(self, subject: str, holder: str) -> None:
        self._holders[subject] = holder
        if len(self._holders) > self.size:
            self._holders.popitem(last=False)

    def claim(self, key: tuple[str, str], holder: str, first: ev.LedgerEvent) -> tuple[str, bytes]:
        """The claim's subject and commit: one `KeyClaimed` event, stamped like the decision that takes it."""
        subject = self.subject(key)
        claim = ev.KeyClaimed(event_id=f"{first.event_id}:key:{key[0]}", correlation_id=first.correlation_id,
                              causation_id=first.causation_id, recorded_at=first.recorded_at, kind=key[0],
                              key_hash=subject.rsplit(".", 1)[1], person_key=holder)
        events, stored, _ = seal_stored([claim], "")
        return subject, encode_sealed(self._seal_key, subject, ev.Commit(claim.event_id, claim.correlation_id,
                                                                         events), stored)
