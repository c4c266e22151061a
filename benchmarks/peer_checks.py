"""The end checks of bench_peer: they raise, so a benchmark whose systems did the wrong work fails loudly.

The ledger: every message answered once (settled, or duplicate for a re-send;
never rejected); the results of the sampled persons equal `ledger replay` of the
same messages, the ledger's own yardstick; where its policy pays no 大病
(cumulative self-pay still under the 低保 deductible, Linfen 二(三)) its
assistance is the workload's 70% and its cap used the model's. Elsewhere the
ledger legitimately pays less assistance than the workload's placeholder rule:
大病 first, then 70% of what remains (Linfen 二(四)1).

The peer: its store holds 3 events per settlement plus one creation event per
person who settled; the cap used of the sampled persons equals the model; the
server ran with ``fsync`` and ``synchronous_commit`` on.
"""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from benchmarks.peer_workload import ASSISTANCE_RATIO, Workload, model_caps
from events.money import ZERO, money

REPO = Path(__file__).resolve().parents[1]


def replay(tmp: Path, setup: list[bytes], lines: list[bytes]) -> list[bytes]:
    """`ledger replay` of the same messages, in their order: the ledger's own yardstick."""
    source, out = tmp / "replay-in.jsonl", tmp / "replay-out.jsonl"
    source.write_bytes(b"\n".join(setup + lines) + b"\n")
    with open(out, "wb") as stdout:
        done = subprocess.run([sys.executable, "-m", "services.cli.main", "replay", str(source)], cwd=REPO,
                              stdout=stdout, stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise RuntimeError(f"bench_peer: ledger replay failed: {done.stderr.decode()[-2000:]}")
    return out.read_bytes().splitlines()


def _by_key(raw: list[bytes], persons: set[str] | None) -> dict[tuple[str, str], dict]:
    out = {}
    for data in raw:
        result = json.loads(data)
        if result.get("msg_type") == "settlement_result" and (persons is None or result["psn_no"] in persons):
            out[(result["setl_id"], result["result"])] = result
    return out


def _fail(failures: list[str], tmp: Path, context: str) -> None:
    if failures:
        raise RuntimeError("bench_peer end checks FAILED:\n  " + "\n  ".join(failures)
                           + f"\n{context} (logs and data kept in {tmp})")


def check_ledger(workload: Workload, sample: list[str], ledger: dict, replayed: list[bytes], tmp: Path) -> dict:
    """Every message answered once, settled or duplicate; the sampled persons' results equal `ledger replay`;
    where the ledger pays no 大病 its assistance is the workload's 70% and its cap used the model's."""
    failures: list[str] = []
    unique, messages = workload.unique, len(workload.messages)
    model = model_caps(workload.messages)
    mine = _by_key(ledger["results"], None)
    kinds: dict[str, int] = {"settled": 0, "duplicate": 0}
    for _, kind in mine:
        kinds[kind] = kinds.get(kind, 0) + 1
    if len(ledger["results"]) != messages or kinds != {"settled": unique, "duplicate": messages - unique}:
        failures.append(f"ledger gave {len(ledger['results'])} answers to {messages} messages: {kinds} "
                        f"(expected {unique} settled, {messages - unique} duplicate)")
    chosen = set(sample)
    ours = {k: v for k, v in mine.items() if v["psn_no"] in chosen}
    theirs = _by_key(replayed, chosen)
    differ = [k for k in theirs.keys() | ours.keys() if ours.get(k) != theirs.get(k)]
    if differ or not ours:
        failures.append(f"ledger differs from `ledger replay` on {len(differ)} results of the sampled persons "
                        f"(first: {sorted(differ)[:3]})")
    amount = {m.setl_id: m.amount for m in workload.messages}
    same_rule = disagree = 0
    for (setl_id, kind), result in mine.items():
        if kind == "settled" and result["hifmi_pay"] == "0.00":
            same_rule += 1
            disagree += result["maf_pay"] != str(money(ASSISTANCE_RATIO * amount[setl_id]))
    if disagree or not same_rule:
        failures.append(f"ledger assistance differs from the 70% rule on {disagree} of {same_rule} stays without 大病")
    last_cap: dict[str, Decimal] = {}
    paid_ci: set[str] = set()
    for (_, kind), result in ours.items():
        if kind == "settled":
            psn = result["psn_no"]
            last_cap[psn] = max(last_cap.get(psn, ZERO), Decimal(result["cap"]["used"]))
            if result["hifmi_pay"] != "0.00":
                paid_ci.add(psn)
    no_ci = [p for p in sample if p not in paid_ci]
    if [p for p in no_ci if last_cap.get(p) != model[p]]:
        failures.append("ledger cap used differs from the model for sampled persons who got no 大病")
    _fail(failures, tmp, f"ledger worker log events: {ledger['worker_log']}")
    return {"ledger_results_vs_replay": len(ours), "ledger_stays_without_ci_equal_to_rule": same_rule,
            "ledger_sampled_persons_without_ci_cap_equal_to_model": len(no_ci),
            "sampled_cap_used_model": str(sum(model[p] for p in sample)),
            "sampled_cap_used_ledger": str(sum(last_cap.get(p, ZERO) for p in sample))}


def check_peer(workload: Workload, sample: list[str], peer: dict, tmp: Path) -> dict:
    """3 events a settlement and one creation a person who settled; the rule's cap used; a durable server."""
    failures: list[str] = []
    unique, messages = workload.unique, len(workload.messages)
    persons = len({m.psn_no for m in workload.messages})
    model = model_caps(workload.messages)
    topics = peer["events_by_topic"]
    want = {"Created": persons, "StaySettled": unique, "CriticalIllnessPaid": unique, "AssistancePaid": unique}
    if topics != want or sum(topics.values()) != 3 * unique + persons:
        failures.append(f"peer store holds {topics}, expected {want}")
    if peer["answers"] != {"settled": unique, "duplicate": messages - unique}:
        failures.append(f"peer answered {peer['answers']}")
    wrong = [p for p in sample if peer["caps"][p] != str(model[p])]
    if wrong:
        failures.append(f"peer cap used differs from the model for {len(wrong)} of {len(sample)} persons")
    if (peer["settings"]["fsync"], peer["settings"]["synchronous_commit"]) != ("on", "on"):
        failures.append(f"PostgreSQL was not durable: {peer['settings']}")
    _fail(failures, tmp, "peer log: peer.log")
    return {"peer_events": sum(topics.values()), "peer_caps_checked": len(sample)}
