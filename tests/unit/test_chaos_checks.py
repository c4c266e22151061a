"""The end checks of `make chaos` (benchmarks/chaos/checks.py) fail when their invariant is broken.

Decisions come from the one decision path over the memory store (as `ledger replay`), folded into a
`History` as the chaos run folds the stream; each test then breaks one thing and expects its check to
say so, with the setl_id in its examples.
"""
from __future__ import annotations

import copy
from decimal import Decimal

from builders import enrolment, identity, medins, stay
from harness import Ledger
from benchmarks.chaos.checks import answered, loss_detected, paid_once, settled_in_stream, settled_once, within_caps
from benchmarks.chaos.feeders import Answers
from benchmarks.chaos.history import History, _fold
from events.ledger import COMMIT_ENCODER

PSN = "CHK-P1"


def _decided(n: int = 3) -> tuple[History, Answers, list[str]]:
    ledger = Ledger()
    for message in (medins(), identity(PSN, "dibao"), enrolment(PSN)):
        ledger.send(message)
    answers, keys = Answers(), []
    for i in range(n):
        key = f"CHK-S{i}"
        keys.append(key)
        [result] = ledger.send(stay(key, PSN, total="50000.00", in_scope="45000.00", hifp="27000.00"))
        answers.add("rpc", result)
    history = History()
    for seq, (_, commit) in enumerate(ledger.store.commits, 1):
        _fold(history, seq, "ledger.person.k1", COMMIT_ENCODER.encode(commit))
    history.last_seq = len(ledger.store.commits)
    return history, answers, keys


def test_a_clean_run_passes_every_check() -> None:
    history, answers, keys = _decided()
    for check in (answered(keys, answers), settled_once(keys, answers), paid_once(history), within_caps(history),
                  settled_in_stream(keys, answers, history)):
        assert check.ok, check
    assert "3 settled" in answered(keys, answers).detail


def test_a_message_never_answered_or_rejected_fails() -> None:
    history, answers, keys = _decided()
    answers.add("http", {"setl_id": keys[1], "result": "rejected", "reason": {"code": "poison_message"}})
    check = answered([*keys, "CHK-NEVER"], answers)
    assert not check.ok and "1 given up without one, 1 rejected" in check.detail
    assert "CHK-NEVER" in check.examples


def test_a_second_settled_answer_or_other_figures_fail() -> None:
    history, answers, keys = _decided()
    again = copy.deepcopy(answers.by_setl[keys[0]][0][1])
    answers.add("feed", again)                                    # settled twice
    other = {**answers.by_setl[keys[1]][0][1], "result": "duplicate", "maf_pay": "0.01"}
    answers.add("http", other)                                    # a duplicate with other figures
    check = settled_once(keys, answers)
    assert not check.ok and check.examples == [keys[0], keys[1]]


def test_a_settlement_decided_twice_in_the_stream_fails() -> None:
    history, answers, keys = _decided()
    seq, subject = history.facts[keys[2]][0][1], "ledger.person.k1"
    history.facts[keys[2]].append((subject, seq + 100))
    check = paid_once(history)
    assert not check.ok and keys[2] in check.examples[0]


def test_a_person_year_over_its_cap_fails() -> None:
    history, _, _ = _decided()
    year = history.persons["ledger.person.k1"].years[2022]
    year.assistance_cap_used = Decimal("60000.01")               # dibao: ¥60,000 a year, 临汾 二(四)1
    check = within_caps(history)
    assert not check.ok and "shared assistance cap: 60000.01 > 60000" in check.examples[0]


def test_an_acknowledged_settlement_gone_from_the_stream_is_a_loss_to_report() -> None:
    history, answers, keys = _decided()
    del history.facts[keys[1]]
    assert not settled_in_stream(keys, answers, history).ok
    quiet = loss_detected(keys, answers, history, {"ok": True}, {"ready": 200, "verify_ok": True}, {}, 0)
    assert not quiet.ok and "NOT by ledger verify, /ready, GET /v1/verify" in quiet.detail
    told = loss_detected(keys, answers, history, {"ok": False}, {"ready": 503, "verify_ok": False}, {}, 0)
    assert told.ok, told
    absorbed = loss_detected(keys, answers, history, {"ok": False}, {"ready": 503, "verify_ok": False}, {}, 1)
    assert not absorbed.ok and "ABSORBED" in absorbed.detail


def test_a_node_holding_holes_is_a_loss_even_when_the_stream_read_is_whole() -> None:
    history, answers, keys = _decided()
    check = loss_detected(keys, answers, history, {"ok": True}, {"ready": 200, "verify_ok": True}, {"n3": 2281}, 0)
    assert not check.ok and "'n3': 2281" in check.detail
    assert loss_detected(keys, answers, history, {"ok": True}, {}, {}, 0).ok
