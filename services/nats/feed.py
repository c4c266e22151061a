"""Durable consumption of ``platform.in.<msg_type>`` (batch feeds, identity lists) — integration.md §3.

Stream ``PLATFORM_IN`` on ``platform.in.>`` with work-queue retention (a
message leaves the stream when acked) and one durable pull consumer
(``adjudicator``) shared by every adjudicator replica: the server hands each
message to one of them.

Per message: decide (`Adjudicator.submit`) → publish the results on
``ledger.out.*`` → ack. The ack goes last, so a crash anywhere before it means
redelivery after ``ack_wait`` and, the decision being already stored, a
``duplicate`` answer — never a second payment. A message whose handling
raises is nak'd with a growing delay; on its last allowed delivery
(``max_deliver``) it is dead-lettered as ``poison_message`` (a MessageRejected
with its raw bytes on ``ledger.ref.rejected``) and term()'d. An error that only
says it cannot be decided now (NATS away, a JetStream ack not in time:
`outbound.not_decided_now`) is retried as long as it takes and never makes a
poison message: the server redelivers without limit, the threshold is ours. A message the
ledger refuses to decide because the stream is held (`LedgerHeld`, ADR 0010)
is neither: it is kept in progress (``+WPI``, so it is not redelivered and its
delivery count does not grow) and tried again every `hold_retry` seconds
until the hold is lifted or the feed stops.

The pull loop is our own rather than nats-py's ``fetch()``: ``fetch(n)``
returns a partial batch only when its timeout expires, which adds up to the
timeout to every quiet-period message. Here pull requests (``batch`` each,
``expires`` and ``idle_heartbeat`` set) are kept outstanding up to
``max_inflight`` messages not yet finished, messages are decided as they
arrive (concurrently across persons, in order per person), and acks are plain
publishes batched by the client's flusher. A missed heartbeat (e.g. after a
reconnect) resets the outstanding count and pulls again.
"""
from __future__ import annotations

import asyncio
from typing import Any

import structlog

from events import codes
from services.adjudicator.service import Adjudicator, redact
from services.adjudicator.store import LedgerHeld
from services.nats.fast import delivery_count, drain_then_wait, send, stream_sequence, subscribe_direct
from services.nats.feed_config import FeedConfig
from services.nats.oversize import decide
from services.nats.provision import read_only
from services.nats.pull import PullCredit
from services.nats.results import ResultPublisher, not_decided_now
from services.nats.streams import ensure_inbound

log = structlog.get_logger(component="ledger.feed")


class FeedConsumer:
    def __init__(self, js: Any, adjudicator: Adjudicator, publisher: ResultPublisher,
                 config: FeedConfig = FeedConfig(), metrics: Any = None, group_commit: Any = None):
        self.js = js
        self.nc = js._nc
        self.adjudicator = adjudicator
        self.publisher = publisher
        self.config = config
        self.metrics = metrics
        self._credit = PullCredit()
        self._inflight = 0
        self._tasks: set[asyncio.Task] = set()
        self._sub: Any = None
        self._watchdog: asyncio.Task | None = None
        self._stopping = False
        self._pull_subject = f"{js._prefix}.CONSUMER.MSG.NEXT.{config.stream}.{config.durable}"
        self._not_now = not_decided_now()
        self._inbox = ""
        self.processed = 0
        # services/adjudicator/group_commit.py: batches, answered and acked after their one ack (ADR 0016)
        self.group = group_commit.build(adjudicator, self._answer, self._process, "feed") if group_commit else None

    async def start(self) -> None:
        await ensure_inbound(read_only(self.js), self.config)   # the services never create streams
        if self.group is not None:
            self.group.start()
        self._inbox = self.nc.new_inbox()
        self._sub = await subscribe_direct(self.nc, self._inbox, self._on_msg)
        self._watchdog = asyncio.create_task(self._watch())
        await self._pull()

    async def _pull(self) -> None:
        c = self.config
        threshold = max(1, min(c.batch, c.max_inflight) // 2)
        free = c.max_inflight - self._credit.outstanding - self._inflight
        while not self._stopping and free >= threshold:
            n = min(c.batch, free)
            free -= n
            await self._credit.request(self.nc, self._pull_subject, self._inbox, n, c.expires, c.heartbeat)

    def _on_msg(self, msg: Any) -> None:
        """Runs in the client's read loop for every delivery (services/nats/fast.py): account, then hand to a task."""
        headers = msg.headers
        if headers and "Status" in headers:
            error = self._credit.status(headers)
            if error is not None:      # the watchdog pulls again within a second
                log.warning("pull_status", status=error)
            elif "Nats-Pending-Messages" in headers and not self._stopping:
                self._spawn(self._pull())
            return
        self._credit.delivered()
        self._inflight += 1
        if self.group is not None:
            self.group.put(msg, msg.data, f"nats:{msg.subject}")
        else:
            self._spawn(self._process(msg))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Any, results: list) -> None:
        """A message decided in a batch, stored and acknowledged: publish its results, then ack it."""
        try:
            await self.publisher.publish(results, _headers(msg))
            await send(self.nc, msg.reply, b"")               # +ACK, last
            self.processed += 1
        except Exception as exc:                              # connection trouble: redelivered, then duplicate
            log.error("feed_message_failed", subject=msg.subject, error=redact(repr(exc), msg.data))
        finally:
            self._inflight -= 1
            if not self._stopping:
                await self._pull()

    async def _process(self, msg: Any) -> None:
        try:
            headers = _headers(msg)
            source = f"nats:{msg.subject}"
            while True:
                try:
                    results = await decide(self.adjudicator, msg.data, source, "feed")
                    break
                except LedgerHeld:
                    if not await self._held(msg):
                        return                                # stopping: redelivered after ack_wait
                except self._not_now as exc:                  # not decided now: again later, never poison
                    await self._retry(msg, headers, exc)
                    return
                except Exception as exc:
                    await self._failed(msg, source, headers, exc)
                    return
            await self.publisher.publish(results, headers)
            await send(self.nc, msg.reply, b"")               # +ACK (an empty payload), last
            self.processed += 1
        except Exception as exc:                              # connection trouble: redelivered after ack_wait
            log.error("feed_message_failed", subject=msg.subject, error=redact(repr(exc), msg.data))
        finally:
            self._inflight -= 1
            if not self._stopping:
                await self._pull()

    async def _held(self, msg: Any) -> bool:
        """Not decided, not dead-lettered: keep the message ours for `hold_retry` seconds; False when stopping."""
        await msg.in_progress()
        deadline = asyncio.get_running_loop().time() + self.config.hold_retry
        while not self._stopping:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return True
            await asyncio.sleep(min(left, 0.5))
        return False

    async def _retry(self, msg: Any, headers: dict[str, str], exc: BaseException) -> None:
        delivered = delivery_count(msg)
        delay = min(self.config.nak_delay * 2 ** (min(delivered, 16) - 1), 30.0)
        log.warning("decision_failed_retrying", inbound_seq=headers["Ledger-Inbound-Seq"], delivered=delivered,
                    delay=delay, error=redact(repr(exc), msg.data))
        if self.metrics is not None:
            self.metrics.redeliveries.inc()
        await msg.nak(delay=delay)

    async def _failed(self, msg: Any, source: str, headers: dict[str, str], exc: Exception) -> None:
        """Deciding raised: tried again until the last of `max_deliver` deliveries, then a poison message."""
        delivered = delivery_count(msg)
        seq = headers["Ledger-Inbound-Seq"]
        if delivered < self.config.max_deliver:
            await self._retry(msg, headers, exc)
            return
        why = redact(f"crashed the adjudicator on each of {delivered} tries; last error: {exc!r}", msg.data)
        try:
            results = await self.adjudicator.dead_letter(msg.data, source, codes.POISON_MESSAGE, why, "feed")
            await self.publisher.publish(results, headers)
        except Exception as again:
            log.error("dead_letter_failed", inbound_seq=seq, error=redact(repr(again), msg.data))
            await msg.nak(delay=self.config.nak_delay)
            return
        log.error("poison_message", inbound_seq=seq, delivered=delivered, error=redact(repr(exc), msg.data))
        await msg.term()

    async def _watch(self) -> None:
        hb = self.config.heartbeat
        while not self._stopping:
            await asyncio.sleep(1.0)
            outstanding = self._credit.outstanding
            if self._credit.lapsed(hb):
                log.warning("pull_heartbeat_missed", outstanding=outstanding)
            try:
                await self._pull()
            except Exception as exc:                          # disconnected: try again next tick
                log.warning("pull_failed", error=repr(exc))

    @property
    def inflight(self) -> int:
        return self._inflight

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop pulling, finish (decide, answer, ack) what was delivered; the rest stays in the stream."""
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        sub, self._sub = self._sub, None
        await drain_then_wait(sub, set(), timeout)
        if self.group is not None:
            await self.group.stop(timeout)
        await drain_then_wait(None, self._tasks, timeout)


def _headers(msg: Any) -> dict[str, str]:
    """The headers a result carries back: the inbound message's sequence and its Nats-Msg-Id."""
    headers = {"Ledger-Inbound-Seq": str(stream_sequence(msg))}
    if msg.headers:
        msg_id = msg.headers.get("Nats-Msg-Id")
        if msg_id:
            headers["Ledger-Msg-Id"] = msg_id
    return headers
