"""The port between the one decision path and where events live (in memory or JetStream)."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from services.policy.decision import Decision
from services.policy.engine import Reference
from services.policy.state import Person


class Conflict(Exception):
    """Another writer appended to this person first: reload and decide again (design.md §2)."""


class LedgerHeld(Exception):
    """The stream lost or holds something the ledger did not write (ADR 0010): nothing is decided for
    this person (or anyone) until an operator restores the stream or accepts the loss. The message
    gets the `unavailable` answer — not decided, not dead-lettered; send it again."""


class Store(Protocol):
    async def person(self, psn_no: str) -> Person:
        """The person's folded state, at least as new as the last decision this store appended."""

    async def reference(self, refresh: bool = False) -> Reference:
        """Hospitals and closed years; `refresh` catches up with the stream first."""

    async def append(self, decision: Decision, person: Person | None) -> None:
        """Append all events of one decision at once, guarded by the person's version, with its key
        claims (none may be held by another person); raises Conflict."""

    async def append_batch(self, pairs: list[tuple[Decision, Person]]) -> None:
        """Append several persons' decisions (distinct persons, each with events) all at once or not at all,
        each guarded as `append` (group commit, ADR 0016); raises Conflict and stores nothing."""

    async def key_taken(self, key: tuple[str, str], psn_no: str, fresh: bool) -> bool:
        """Whether another person holds this global key (`fresh`: ask the source of truth, after a
        conflict; else a cheap answer is enough, since the append itself refuses a taken key)."""

    def cached(self, psn_no: str) -> bool:
        """Whether `person` would answer from memory (a group commit reads the others together first)."""

    def forget(self, psn_no: str) -> None:
        """Drop a cached person after a conflict."""

    def persons_due(self, admdvs: str, year: int) -> AsyncIterator[str]:
        """psn_no of every person who may have quota-managed visits to pay at year end."""
