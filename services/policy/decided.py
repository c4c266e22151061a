"""A settlement as it was decided: its facts keep the inbound message and the hospital snapshot
(`ev.SettlementFacts`), so a re-decision (a late status, the year end, the audit) reads what the first
decision read. What it may change is said here."""
from __future__ import annotations

import msgspec

from events.messages import Settlement


def paid_at_once(settlement: Settlement) -> Settlement:
    """A quota-managed visit paid now, not in the year-end sum: as a 住院管理 one, at the same §6 ratios
    within the same cap (临汾 二(五)). Said by the year end itself, and for a visit settled after its
    area's year_close, which no close would pay again. The facts keep the settlement as sent (`quota`)."""
    return msgspec.structs.replace(settlement, chronic_mgmt="inpatient_managed")
