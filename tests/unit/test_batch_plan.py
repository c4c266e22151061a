"""`plan`: which waiting messages one group commit takes (services/adjudicator/batch.py, ADR 0016)."""
from __future__ import annotations

from services.adjudicator.batch import Tag, plan

K1, K2 = ("setl_id", "S1"), ("setl_id", "S2")


def t(psn: str | None, key: tuple[str, str] | None = None, barrier: bool = False) -> Tag:
    return Tag(psn, key, barrier)


def test_one_message_per_person_and_the_rest_wait_in_order() -> None:
    tags = [t("A", K1), t("B"), t("A", K2), t("C"), t("B")]
    assert plan(tags, 10) == ([0, 1, 3], [], False)      # A's and B's second messages wait


def test_a_second_claimant_of_a_key_waits_even_when_the_first_was_passed_over() -> None:
    # B's first message is taken; its second (claiming S1) waits; then C claiming S1 must wait too, or C
    # would win S1 although B sent it first (one by one, B holds it and C is refused).
    tags = [t("B"), t("B", K1), t("C", K1), t("D", K2)]
    assert plan(tags, 10).members == [0, 3]


def test_busy_persons_and_keys_wait_for_the_unit_deciding_them() -> None:
    tags = [t("A"), t("B", K1), t("C")]
    assert plan(tags, 10, busy_persons={"A"}, busy_keys={K1}).members == [2]


def test_a_barrier_ends_the_batch_and_runs_alone_only_from_the_front() -> None:
    tags = [t("A"), t(None), t("X", barrier=True), t("B")]
    assert plan(tags, 10) == ([0], [1], False)
    assert plan(tags[2:], 10) == ([], [], True)
    assert plan([t("A")] + tags[2:], 10, busy_persons={"A"}) == ([], [], False)   # waits behind busy A


def test_the_limit_counts_members() -> None:
    tags = [t(None)] + [t(f"P{i}") for i in range(5)]
    assert plan(tags, 3) == ([1, 2, 3], [0], False)
