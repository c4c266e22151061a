"""倾斜救助 approved by the county: counts against the shared annual cap (青海 四(三), 临汾 二(四)1)."""
from __future__ import annotations

from events import codes
from events import ledger as ev
from events.messages import TiltedGrant
from events.money import ZERO
from events.results import GrantResult, Reason, as_duplicate
from services.policy.decision import GRANT_ID, Decision, Rejection
from services.policy.pack import Pack
from services.policy.shown import cap_of
from services.policy.state import Person, PersonYear


def decide_tilted_grant(person: Person, msg: TiltedGrant, pack: Pack, key_taken: bool = False) -> Decision:
    """`key_taken`: the `grant_id` is held by another person (integration.md §2 "Keys are global")."""
    known = person.grants.get(msg.grant_id)
    if known is not None:
        return Decision(results=[as_duplicate(known)], psn_no=msg.psn_no)
    if key_taken:
        raise Rejection(codes.GRANT_ID_CONFLICT, f"grant {msg.grant_id!r} was already decided for another person; "
                                                 "a grant_id is paid once (integration.md §2)")
    if msg.year not in person.enrolments:      # policy.md §12: a grant counts against an enrolled year's cap
        raise Rejection(codes.NOT_ENROLLED, f"no enrolment of this person for {msg.year}; send the enrolment first")
    y = person.years.get(msg.year) or PersonYear(msg.year)
    limit, used = pack.shared_cap, y.assistance_cap_used
    granted = min(msg.amount, max(ZERO, limit - used))
    refused = msg.amount - granted
    reason = None
    if refused:
        reason = Reason("over_annual_cap", f"{refused} of {msg.amount} refused: the annual assistance cap of "
                                           f"{limit} has {limit - used if limit > used else ZERO} left "
                                           f"({pack.shared_cap_clause})")
    event = ev.TiltedGrantPaid(grant_id=msg.grant_id, psn_no=msg.psn_no, admdvs=msg.admdvs, year=msg.year,
                               approval_no=msg.approval_no, approved_on=msg.approved_on, requested=msg.amount,
                               granted=granted, refused=refused, cap_limit=limit, cap_used_before=used,
                               clause=pack.shared_cap_clause)
    result = GrantResult(grant_id=msg.grant_id, psn_no=msg.psn_no, result="settled", year=msg.year, pack=pack.id,
                         requested=msg.amount, granted=granted, refused=refused, cap=cap_of(limit, used + granted),
                         reason=reason)
    return Decision([event], [result], psn_no=msg.psn_no, claims=[(GRANT_ID, msg.grant_id)])
