"""The persons one JetStream store keeps in memory: a bounded LRU of folded state, by psn_no and by subject."""
from __future__ import annotations

from collections import OrderedDict

from services.policy.state import Person


class CachedPerson:
    """A person's state, their subject, and whether a conflict has made it stale (caught up on next use)."""
    __slots__ = ("person", "subject", "stale")

    def __init__(self, person: Person, subject: str):
        self.person = person
        self.subject = subject
        self.stale = False


class PersonCache:
    """At most `size` persons; the least recently used leaves first (refcounting frees it)."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError("cache_size must be at least 1")
        self.size = size
        self._entries: OrderedDict[str, CachedPerson] = OrderedDict()
        self._by_subject: dict[str, str] = {}          # subject -> psn_no, for cached persons

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, psn_no: str) -> CachedPerson | None:
        return self._entries.get(psn_no)

    def use(self, psn_no: str) -> CachedPerson | None:
        """The entry, now the most recently used."""
        entry = self._entries.get(psn_no)
        if entry is not None:
            self._entries.move_to_end(psn_no)
        return entry

    def on_subject(self, subject: str) -> CachedPerson | None:
        psn_no = self._by_subject.get(subject)
        return self._entries.get(psn_no) if psn_no is not None else None

    def put(self, psn_no: str, entry: CachedPerson) -> None:
        old = self._entries.get(psn_no)
        if old is not None:
            self._by_subject.pop(old.subject, None)
        self._entries[psn_no] = entry
        self._entries.move_to_end(psn_no)
        self._by_subject[entry.subject] = psn_no
        while len(self._entries) > self.size:
            _, evicted = self._entries.popitem(last=False)
            self._by_subject.pop(evicted.subject, None)

    def clear(self) -> None:
        self._entries.clear()
        self._by_subject.clear()
