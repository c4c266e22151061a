"""`JetStreamStore.append_batch`: several persons' commits and their key claims as one atomic batch (ADR 0016).

One JetStream atomic batch (nats-io ADR-50; LEDGER has ``allow_atomic``): first the key claims, each
expecting sequence 0 on its ``ledger.ref.key.<hash>`` subject, then one sealed commit per person,
each expecting the person's version on ``ledger.person.<person_key>``. The server checks every
expectation at commit, under the stream's lock, and stores all or nothing; only the commit message is
acknowledged, with the last sequence (the others hold the sequences just before it, in order).

Any refusal (10071: a stale person or a taken key; a batch error) raises and nothing is stored: the
caller decides the members again one by one. An ack that does not come in time is settled by the
stream, as `Appending._published` (services/nats/appending.py) does for one commit: the batch's last commit found on its
subject means all of it was stored (it is atomic), and it is answered as decided; otherwise the
timeout is raised and the members are decided again one by one, which read the stream first — a
batch stored after all is then a ``duplicate``, never a second payment.
"""
from __future__ import annotations

import asyncio
from typing import Any

import structlog
from nats.errors import MaxPayloadError
from nats.js.errors import APIError

from events import ledger as ev
from events.chain import encode_sealed, seal_stored
from events.upcast import commit_id
from services.nats.person_cache import CachedPerson
from services.nats.reads import read_subject
from services.policy.decision import Decision
from services.policy.state import Person, apply_commit

log = structlog.get_logger(component="ledger.store")

_HEADROOM = 256           # bytes of batch headers beside each payload


async def append_batch(store: Any, pairs: list[tuple[Decision, Person]]) -> None:
    """Store every decision (each with events, a person, distinct persons and keys) in one atomic batch."""
    guard = store.guard
    if guard is not None and guard.active:
        for decision, _ in pairs:
            guard.check(store.subject_of(decision.psn_no))
    claims: list[tuple[str, bytes, int]] = []
    commits: list[tuple[str, bytes, int]] = []
    staged: list[tuple[Person, ev.Commit, int, str, list[str]]] = []
    for decision, person in pairs:
        # Version and head read here, with no await since the decision: they are the state decided on.
        expected, head = person.version, person.head_hash
        entry = store._cache.get(person.psn_no)
        subject = entry.subject if entry is not None else store.subject_of(person.psn_no)
        events, stored, _ = seal_stored(decision.events, head)
        commit = ev.Commit(events[0].event_id, events[0].correlation_id, events, decision.results)
        holder = subject.rsplit(".", 1)[1]
        taking = []
        for key in decision.claims:
            if store.keys.held_by(key) != holder:
                key_subject, claim = store.keys.claim(key, holder, events[0])
                claims.append((key_subject, claim, 0))
                taking.append(key_subject)
        commits.append((subject, encode_sealed(store._seal_key, subject, commit, stored), expected))
        staged.append((person, commit, expected, subject, taking))
    messages = claims + commits
    limit = store.publisher.nc.max_payload - _HEADROOM
    if any(len(payload) > limit for _, payload, _ in messages):
        raise MaxPayloadError                     # one by one, where it becomes a dead letter
    mark = guard.high_water if guard is not None else 0
    try:
        last = await _published_batch(store, messages, staged[-1][1].commit_id)
    except APIError as exc:
        raise store._lost_race(exc, "batch") from None
    if guard is not None:
        guard.acked(last, mark)
    seq = last - len(commits)                     # the commits hold the batch's last sequences, in order
    for person, commit, expected, subject, taking in staged:
        seq += 1
        for key_subject in taking:
            store.keys.remember(key_subject, subject.rsplit(".", 1)[1])
        if person.version != expected:
            store.forget(person.psn_no)
            continue
        apply_commit(person, commit, seq)
        entry = store._cache.get(person.psn_no)
        if entry is None or (entry.person is not person and entry.person.version < seq):
            store._cache.put(person.psn_no, CachedPerson(person, subject))


async def _published_batch(store: Any, messages: list[tuple[str, bytes, int]], last_commit_id: str) -> int:
    """The batch's last sequence; when its ack is lost, the stream says whether it was stored."""
    try:
        return await store.publisher.publish_batch(messages)
    except asyncio.TimeoutError:
        subject, _, expected = messages[-1]
        msgs = await read_subject(store.js, subject, stream=store.stream, after_seq=expected, timeout=store.timeout)
        if msgs and commit_id(msgs[0].data) == last_commit_id:
            log.info("batch_ack_lost_stored", messages=len(messages), seq=msgs[0].seq)
            return msgs[0].seq
        raise


