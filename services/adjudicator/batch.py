"""Group commit, the deciding half: which waiting messages go in one batch, and deciding them (ADR 0016).

A batch takes waiting messages in arrival order and holds **at most one per person and one per global
key** (`plan`): a message whose person or key is already in the batch, or was passed over in this scan,
waits for the next batch, so each person's messages — and each key's claimants — are decided in the
order they came, exactly as one by one. Reference messages (``medins``, ``year_close``) are barriers: a
batch ends before one, and it is decided alone on the one-by-one path. Messages that cannot be read
(no person to order them by) go one by one too.

`decide_batch` decides each member against the store's state with the one engine, then stores every
decision that has events as one atomic append (`Store.append_batch`): all or nothing, each commit
guarded by its person's version and each key claim expecting an empty subject. A member it cannot
decide here — unreadable, a dead letter, a hospital not yet known, a failed load — and every member of
a batch whose append failed, goes back to the caller to be decided one by one (`Handler.handle`),
which reloads and retries as it always does: a failed batch is never half-answered, and a batch that
was stored after all (an ack lost) is then found in the stream, answered ``duplicate`` and never paid
twice.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import structlog

from events.messages import Inbound, Medins, Settlement, YearClose
from events.results import Outbound
from events.validation import decode
from services.adjudicator.handler import Handler, global_key
from services.policy.decision import Context, Decision

log = structlog.get_logger(component="ledger.batch")

BARRIERS = (Medins, YearClose)


class Tag(NamedTuple):
    """What orders a message against the others: its person, its global key, whether it is a barrier."""
    psn_no: str | None
    key: tuple[str, str] | None
    barrier: bool


class Plan(NamedTuple):
    members: list[int]        # indexes decided together in this batch
    singles: list[int]        # indexes decided one by one now (nothing orders them: no person)
    barrier: bool             # the first waiting message is a barrier: decide it alone once nothing runs


def plan(tags: Sequence[Tag], limit: int, busy_persons: Set[str] = frozenset(),
         busy_keys: Set[tuple[str, str]] = frozenset()) -> Plan:
    """Choose the next batch from `tags` (in arrival order), pure: see the module docstring.

    `busy_*`: persons and keys of messages still being decided (an earlier batch, or one by one); their
    next messages wait. Scanning stops at the first barrier (what follows it waits for it) and once
    `limit` members are taken. What is neither taken nor single stays waiting, in its order."""
    members: list[int] = []
    singles: list[int] = []
    persons = set(busy_persons)
    keys = set(busy_keys)
    for i, tag in enumerate(tags):
        if tag.barrier:
            return Plan(members, singles, i == 0)
        if tag.psn_no is None:
            singles.append(i)
            continue
        free = tag.psn_no not in persons and (tag.key is None or tag.key not in keys)
        persons.add(tag.psn_no)
        if tag.key is not None:
            keys.add(tag.key)
        if free:
            members.append(i)
            if len(members) >= limit:
                break
    return Plan(members, singles, False)


@dataclass(eq=False)
class Waiting:
    """One message waiting for a batch; decoded once, when first planned."""
    item: Any                          # the transport's message, handed back with the answer
    raw: bytes
    source: str
    message: Inbound | None = None
    invalid: bool = False
    _tag: Tag | None = field(default=None, repr=False)

    def tag(self) -> Tag:
        if self._tag is None:
            try:
                self.message = decode(self.raw)
            except Exception:                      # Invalid, or a crash: the one-by-one path answers it
                self.invalid = True
                self._tag = Tag(None, None, False)
                return self._tag
            psn_no = getattr(self.message, "psn_no", None)
            self._tag = Tag(psn_no if isinstance(psn_no, str) and psn_no else None, global_key(self.message),
                            isinstance(self.message, BARRIERS))
        return self._tag


async def decide_batch(handler: Handler, members: list[Waiting]) -> list[list[Outbound] | None]:
    """Decide `members` (distinct persons and keys, none a barrier) and store them as one batch.

    Returns, per member, its results once stored (or answered from state: a duplicate), or None:
    decide that one one by one (`Handler.handle`)."""
    store = handler.store
    out: list[list[Outbound] | None] = [None] * len(members)
    ref = await store.reference(False)
    psn_nos: list[str] = [w.tag().psn_no for w in members]     # type: ignore[misc]
    missing = [p for p in psn_nos if not store.cached(p)]
    if missing:                                                # read from the stream together, not in turn
        await asyncio.gather(*(store.person(p) for p in missing), return_exceptions=True)
    persons: list[Any] = []
    for psn_no in psn_nos:                                     # cached now: no task each
        try:
            persons.append(await store.person(psn_no))
        except Exception as exc:
            persons.append(exc)
    staged: list[tuple[int, Decision, Any]] = []
    for i, (waiting, person) in enumerate(zip(members, persons)):
        message = waiting.message
        if isinstance(person, BaseException) or message is None:
            continue                                           # the one-by-one path meets the error itself
        if isinstance(message, Settlement) and message.fixmedins_code not in ref.hospitals:
            continue                                           # it refreshes the reference data first
        key = waiting.tag().key
        ctx = Context(now=handler.clock(), correlation_id=handler.new_id())
        try:
            taken = key is not None and await store.key_taken(key, person.psn_no, False)
            decision = handler.engine.decide(message, person, ref, ctx, key_taken=taken)
        except Exception as exc:                               # decided again one by one, and handled there
            log.warning("batch_member_not_decided", error=type(exc).__name__)
            continue
        if decision.psn_no is None or decision.ref_kind is not None:
            continue                                           # a dead letter: stored as received, one by one
        if not decision.events:
            out[i] = decision.results                          # a duplicate: answered from state
            continue
        staged.append((i, decision, person))
    if not staged:
        return out
    try:
        await store.append_batch([(decision, person) for _, decision, person in staged])
    except asyncio.CancelledError:
        raise
    except Exception as exc:                                   # a conflict, a taken key, NATS: one by one
        log.info("batch_fell_back", members=len(staged), error=type(exc).__name__)
        for _, decision, _ in staged:
            store.forget(decision.psn_no)                      # type: ignore[arg-type]
        return out                                             # the staged members are still None
    for i, decision, _ in staged:
        out[i] = decision.results
    return out
