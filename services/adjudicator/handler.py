"""One path from raw bytes to results, for every transport, replay and tests.

Validate → load the person → decide (pure) → append atomically → answer. A
lost race for the same person is retried on fresh state, so a cap is never
overrun whatever the concurrency.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from events.ledger import MessageRejected
from events.messages import Inbound, Settlement, TiltedGrant, YearClose
from events.results import Outbound, Reason, SettlementAdjustment, YearCloseResult
from events.validation import Invalid, decode, read_keys
from services.adjudicator.store import Conflict, Store
from services.policy.decision import GRANT_ID, SETL_ID, Context, Decision
from services.policy.engine import Engine
from services.policy.year_end import has_quota_due

MAX_CONFLICT_RETRIES = 50


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def global_key(message: Inbound) -> tuple[str, str] | None:
    """The key a message claims for its person across the whole ledger (integration.md §2)."""
    if isinstance(message, Settlement):
        return SETL_ID, message.setl_id
    if isinstance(message, TiltedGrant):
        return GRANT_ID, message.grant_id
    return None


@dataclass
class Handler:
    engine: Engine
    store: Store
    clock: Callable[[], dt.datetime] = utc_now
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)

    async def handle(self, raw: bytes, source: str = "") -> list[Outbound]:
        ctx = Context(now=self.clock(), correlation_id=self.new_id())
        try:
            message = decode(raw)
        except Invalid as bad:
            decision = self.engine.reject(bad.reason, bad.msg_type, bad.fields, ctx, raw, source)
            await self.store.append(decision, None)
            return decision.results
        decision = await self._decide_and_append(message, ctx, raw, source)
        results = list(decision.results)
        if isinstance(message, YearClose) and decision.events:
            results[0], adjustments = await self._year_end(message, ctx, results[0])
            results.extend(adjustments)
        return results

    async def dead_letter(self, raw: bytes, source: str, code: str, message: str, *,
                          keep: bytes | None = None) -> list[Outbound]:
        """Record a message that cannot be decided and give its rejected result: a `poison_message`, or one
        too large to be read whole (`raw` is then its first bytes and `message` says so, events.limits.Body).
        ``keep``: the bytes to store instead of ``raw`` when ``raw`` itself cannot be stored
        (``message_too_large``); the result's key fields still come from the whole message."""
        msg_type, fields = read_keys(raw)
        ctx = Context(now=self.clock(), correlation_id=self.new_id())
        decision = self.engine.reject(Reason(code, message), msg_type, fields, ctx, raw if keep is None else keep,
                                      source)
        await self.store.append(decision, None)
        return decision.results

    async def _decide_and_append(self, message: Inbound, ctx: Context, raw: bytes = b"",
                                 source: str = "") -> Decision:
        psn_no = getattr(message, "psn_no", None)
        key = global_key(message)
        refresh = False
        for _ in range(MAX_CONFLICT_RETRIES):
            person = await self.store.person(psn_no) if psn_no else None
            ref = await self.store.reference(refresh)
            if (isinstance(message, Settlement) and not refresh
                    and message.fixmedins_code not in ref.hospitals):
                refresh = True          # another process may have just recorded the hospital
                continue
            # Optimistic: the claim goes into the same atomic append, which fails if another person holds
            # the key; only then (refresh) is the holder looked up (integration.md §2 "Keys are global").
            taken = key is not None and psn_no is not None and await self.store.key_taken(key, psn_no, refresh)
            decision = self.engine.decide(message, person, ref, ctx, key_taken=taken)
            if decision.ref_kind == "rejected" and raw:
                # A dead letter keeps the bytes as received and where they came from, to re-drive them.
                decision.events = [msgspec.structs.replace(e, raw=raw, source=source)
                                   if isinstance(e, MessageRejected) else e for e in decision.events]
            try:
                await self.store.append(decision, person)
                return decision
            except Conflict:
                if psn_no:
                    self.store.forget(psn_no)
                refresh = True
        raise RuntimeError(f"gave up after {MAX_CONFLICT_RETRIES} conflicting writers")

    async def _year_end(self, close: YearClose, ctx: Context, closed: Outbound) -> tuple[Outbound, list[Outbound]]:
        adjustments: list[SettlementAdjustment] = []
        async for psn_no in self.store.persons_due(close.admdvs, close.year):
            for _ in range(MAX_CONFLICT_RETRIES):
                person = await self.store.person(psn_no)
                if not has_quota_due(person, close.admdvs, close.year):
                    break
                decision = self.engine.year_end(person, close, ctx)
                try:
                    await self.store.append(decision, person)
                except Conflict:
                    self.store.forget(psn_no)
                    continue
                adjustments.extend(r for r in decision.results if isinstance(r, SettlementAdjustment))
                break
        assert isinstance(closed, YearCloseResult)
        return msgspec.structs.replace(closed, adjustments=adjustments), adjustments
