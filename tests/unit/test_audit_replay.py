"""Audit replay recomputes a person's payments from their own subject: what it needs must be there."""
from __future__ import annotations

import asyncio
from decimal import Decimal

from builders import cancel, enrolment, identity, medins, visit, year_close
from harness import Ledger
from services.audit.compare import Scope
from services.audit.packs import PackLibrary
from services.audit.replay import audit_person


def _audit(lf: Ledger, psn_no: str):
    commits = [(seq, c) for seq, (psn, c) in enumerate(lf.store.commits, 1) if psn == psn_no]
    return asyncio.run(audit_person("key", commits, PackLibrary.load(), Scope()))


def test_a_quota_visit_paid_after_its_year_close_audits_clean() -> None:
    """The close is the area's (on ledger.ref), not on the person's subject: the visit's facts carry it."""
    lf = Ledger()
    lf.send(medins(), enrolment("P"), identity("P", "dibao"))
    lf.send(visit("V1", "P", total="400", in_scope="400", hifp="0", chronic_mgmt="quota"))
    lf.send(year_close("141000", 2022))
    lf.send(visit("V2", "P", total="700", in_scope="700", hifp="0", chronic_mgmt="quota", date="2022-12-20"))
    lf.send(cancel("V1", "P"))
    audit = _audit(lf, "P")
    assert audit.compared == 6 and audit.differences == []


def test_an_audit_would_see_a_late_quota_visit_left_unpaid() -> None:
    """The same history with the late visit's payment struck out is reported, line by line."""
    lf = Ledger()
    lf.send(medins(), enrolment("P"), identity("P", "dibao"), year_close("141000", 2022))
    lf.send(visit("V2", "P", total="700", in_scope="700", hifp="0", chronic_mgmt="quota", date="2022-12-20"))
    psn, commit = lf.store.commits[-1]
    lf.store.commits[-1] = (psn, type(commit)(commit.commit_id, commit.correlation_id, commit.events[:1],
                                              commit.results))
    audit = _audit(lf, "P")
    assert [(d.kind, d.key, d.paid, d.recomputed) for d in audit.differences] == [
        ("line", "V2", Decimal("0.00"), Decimal("210.00"))]
