"""The end checks of a scenario, each a row: passed or not, with the counts behind it.

What the feeders saw (`Answers`) is held against what the stream holds
(`History`), the read models against a fresh rebuild, and `ledger verify`
against the stream. The last check asks whether any loss the faults caused
(an acknowledged settlement gone from the stream, a sequence gone, a commit
that no longer decodes) was *reported* by the ledger — `ledger verify`, ``/ready``
and ``GET /v1/verify`` — rather than carried on from (design.md §2).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import msgspec

from benchmarks.chaos.feeders import Answers
from benchmarks.chaos.history import History, cap_breaches
from benchmarks.chaos.readmodels import Comparison, ledger_json
from benchmarks.chaos.stack import SUPERVISOR_TOKEN, Stack
from services.policy.pack import PackSet


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    examples: list[str]
    lost: bool = False        # failed only because of a loss the ledger detected (see `loss_detected`)

    @property
    def verdict(self) -> str:
        return "pass" if self.ok else "lost" if self.lost else "FAIL"


# What a stream that lost events cannot satisfy, however well the ledger behaves: once the loss check
# shows the loss was reported, these rows say "lost" (the evidence), not FAIL. No second payment, no
# cap breach and no differing figures are never excused.
LOSS_EVIDENCE = ("every message has a definitive result", "every settled answer is in the stream",
                 "read models equal a fresh rebuild", "ledger verify passes")


def _figures(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "result"}


def answered(keys: list[str], answers: Answers) -> Check:
    no_answer, refused = [], []
    settled = duplicates = 0
    for key in keys:
        results = [body.get("result") for _, body in answers.by_setl.get(key, [])]
        if not results:
            no_answer.append(key)
        settled += results.count("settled")
        duplicates += results.count("duplicate")
        if any(r not in ("settled", "duplicate") for r in results):
            refused.append(f"{key}: {[r for r in results if r not in ('settled', 'duplicate')]}")
    return Check("every message has a definitive result", not (no_answer or refused),
                 f"{len(keys):,} settlements: {settled:,} settled, {duplicates:,} duplicate answers; "
                 f"{len(no_answer)} given up without one, {len(refused)} rejected", (no_answer + refused)[:5])


def settled_once(keys: list[str], answers: Answers) -> Check:
    twice, differ = [], []
    for key in keys:
        seen = answers.by_setl.get(key, [])
        if [body.get("result") for _, body in seen].count("settled") > 1:
            twice.append(key)
        if any(_figures(body) != _figures(seen[0][1]) for _, body in seen[1:]):
            differ.append(key)
    return Check("one settled per setl_id, the rest duplicates alike", not (twice or differ),
                 f"{len(twice)} settled twice, {len(differ)} answered with differing figures",
                 (twice + differ)[:5])


def paid_once(history: History) -> Check:
    twice = {k: v for k, v in history.facts.items() if len(v) > 1}
    return Check("no setl_id paid twice", not twice,
                 f"{len(history.facts):,} setl_ids in {len(history.persons):,} person subjects "
                 f"({history.messages:,} messages); {len(twice)} decided more than once",
                 [f"{k} at seqs {[s for _, s in v]}" for k, v in list(twice.items())[:5]])


def within_caps(history: History) -> Check:
    breaches, checked, reached = cap_breaches(history, PackSet.from_dir())
    return Check("no person-year over a cap", not breaches and not history.fold_errors,
                 f"{checked:,} capped counters checked, {reached:,} at their cap, {len(breaches)} over; "
                 f"{len(history.fold_errors)} commits that did not fold",
                 [f"{b.subject} {b.year} {b.what}: {b.used} > {b.limit}" for b in breaches[:5]]
                 + history.fold_errors[:3])


def lost_settlements(keys: list[str], answers: Answers, history: History) -> tuple[list[str], list[str], int]:
    """(acknowledged but gone from the stream, stored with other figures than answered, acknowledged)."""
    missing, differ, acked = [], [], 0
    for key in keys:
        seen = [body for _, body in answers.by_setl.get(key, []) if body.get("result") in ("settled", "duplicate")]
        if not seen:
            continue
        acked += 1
        stored = history.result_of(key)
        if stored is None:
            missing.append(key)
        elif _figures(msgspec.to_builtins(stored)) != _figures(_plain(seen[0])):
            differ.append(key)
    return missing, differ, acked


def _plain(body: dict) -> dict:
    """An answer as `msgspec.to_builtins` would give the stored result (JSON text round trip)."""
    return msgspec.json.decode(msgspec.json.encode(body))


def settled_in_stream(keys: list[str], answers: Answers, history: History) -> Check:
    missing, differ, acked = lost_settlements(keys, answers, history)
    return Check("every settled answer is in the stream", not missing and not differ,
                 f"{acked:,} acknowledged; {len(missing)} missing from the stream, {len(differ)} stored with "
                 f"other figures", (missing + differ)[:5])


def read_models(comparison: Comparison) -> Check:
    detail = (f"{comparison.rows:,} rows in {len(comparison.differing) or 'no'} differing tables, "
              f"rebuilt to seq {comparison.rebuild_seq:,}")
    if comparison.error:
        detail = comparison.error
    return Check("read models equal a fresh rebuild", comparison.ok, detail,
                 [f"{t}: {a} only live, {b} only rebuilt" for t, (a, b) in comparison.differing.items()])


def verify_passes(code: int, report: dict | None, err: str) -> Check:
    if report is None:
        return Check("ledger verify passes", False, f"exit {code}, no report: {err[-300:]}", [])
    found = report.get("findings") or []
    return Check("ledger verify passes", code == 0 and bool(report.get("ok")),
                 f"exit {code}; {report.get('messages', 0):,} messages, {report.get('persons', 0):,} persons up to "
                 f"seq {report.get('last_seq', 0):,}; {len(report.get('breaks') or [])} chain breaks, "
                 f"{len(found)} findings",
                 [f"{b.get('subject', '')} seq {b.get('seq')}: {b.get('reason') or b.get('code')}"
                  for b in (report.get("breaks") or []) + found][:5])


async def ledger_says(stack: Stack) -> dict:
    """What the ledger reports of itself now: /ready and GET /v1/verify (a whole-stream verify inside the
    ledger: asked only when there was a loss to report)."""
    async with httpx.AsyncClient(base_url=stack.http_base, timeout=300.0) as http:
        ready = await http.get("/ready")
        verify = await http.get("/v1/verify", headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"})
    body = verify.json() if verify.headers.get("content-type", "").startswith("application/json") else {}
    return {"ready": ready.status_code, "ready_body": ready.json(), "verify_status": verify.status_code,
            "verify_ok": bool(body.get("ok")) if verify.status_code == 200 else None}


def node_holes(stack: Stack) -> dict[str, int]:
    """Per cluster node, the LEDGER messages it no longer holds below its last sequence. LEDGER denies
    deletes and every sequence starts at 1, so any hole is lost data (Jepsen: a corrupted minority)."""
    if stack.cluster is None:
        return {}
    from benchmarks.chaos.cluster_faults import states
    return {name: last - held for name, state in states(stack.cluster).items() if state is not None
            for held, last in [state] if last > held}


def loss_detected(keys: list[str], answers: Answers, history: History, verify_report: dict | None,
                  said: dict, holes: dict[str, int], absorbed: int) -> Check:
    missing, _, _ = lost_settlements(keys, answers, history)
    lost = len(missing) + len(history.gaps) + len(history.undecodable) + sum(holes.values())
    if not lost:
        return Check("loss detected, never absorbed", True,
                     "no loss: every acknowledged settlement and every sequence is in the stream, "
                     "on every node", [])
    reported = {"ledger verify": verify_report is not None and not verify_report.get("ok"),
                "/ready": said.get("ready") == 503, "GET /v1/verify": said.get("verify_ok") is False}
    missed = [where for where, yes in reported.items() if not yes]
    detail = (f"lost: {len(missing)} acknowledged settlements, {len(history.gaps)} sequence gaps, "
              f"{len(history.undecodable)} undecodable commits, node holes {holes or 'none'}; reported by "
              f"{', '.join(w for w, y in reported.items() if y) or 'nothing'}"
              + (f"; NOT by {', '.join(missed)}" if missed else ""))
    if absorbed:
        detail += f"; ABSORBED: {absorbed} setl_ids decided or settled again after the loss"
    return Check("loss detected, never absorbed", not missed and not absorbed, detail,
                 missing[:5] + [f"gap {a}..{b}" for a, b in history.gaps[:3]])


async def run_checks(stack: Stack, keys: list[str], answers: Answers, history: History,
                     comparison: Comparison) -> list[Check]:
    code, report, err = await asyncio.to_thread(ledger_json, stack, "verify", "--json")
    checks = [answered(keys, answers), settled_once(keys, answers), paid_once(history), within_caps(history),
              settled_in_stream(keys, answers, history), read_models(comparison), verify_passes(code, report, err)]
    twice = {k for k, v in history.facts.items() if len(v) > 1}
    twice |= {k for k in keys if [b.get("result") for _, b in answers.by_setl.get(k, [])].count("settled") > 1}
    holes = node_holes(stack)
    missing, _, _ = lost_settlements(keys, answers, history)
    lost = missing or history.gaps or history.undecodable or holes
    said = await ledger_says(stack) if lost else {}
    loss = loss_detected(keys, answers, history, report, said, holes, len(twice))
    if loss.ok and loss.detail.startswith("lost"):
        for check in checks:
            check.lost = not check.ok and check.name in LOSS_EVIDENCE
    return [*checks, loss]
