"""救助身份 granted or revoked; a grant re-decides the stays it covers (policy.md §12, 青海 五(一))."""
from __future__ import annotations

from events import codes
from events import ledger as ev
from events.messages import PsnIdentity
from events.results import IdentityResult
from services.policy.decision import Decision, Rejection
from services.policy.pack import Pack
from services.policy.redecide import PackFor, YearClosed, redecide_for_grant
from services.policy.state import Person, identity_key


def decide_identity(person: Person, msg: PsnIdentity, pack: Pack, pack_for: PackFor,
                    year_closed: YearClosed) -> Decision:
    """`pack_for`: the pack a settlement was decided under; `year_closed(admdvs, year)`: whether the area's
    year was closed (a late status then pays a quota visit at once, as settlement_decision.py does)."""
    if not pack.knows(msg.status):
        raise Rejection(codes.UNKNOWN_STATUS, f"status {msg.status!r} is not a status of pack {pack.id}")
    key = identity_key(msg.status, msg.action, msg.begndate, msg.enddate if msg.action == "grant" else None, msg.doc_no)
    if key in person.identities:
        return Decision(results=[IdentityResult(psn_no=msg.psn_no, status=msg.status, action=msg.action,
                                                result="duplicate", pack=pack.id)], psn_no=msg.psn_no)
    if msg.action == "revoke":      # nothing already paid is taken back (integration.md §1)
        event: ev.LedgerEvent = ev.StatusRevoked(psn_no=msg.psn_no, admdvs=msg.admdvs, status=msg.status,
                                                 begndate=msg.begndate, source_dept=msg.source_dept, doc_no=msg.doc_no)
        paid, adjustments = [], []
    else:
        event = ev.StatusGranted(psn_no=msg.psn_no, admdvs=msg.admdvs, status=msg.status, begndate=msg.begndate,
                                 enddate=msg.enddate, source_dept=msg.source_dept, doc_no=msg.doc_no)
        paid, adjustments = redecide_for_grant(person, msg, pack, pack_for, year_closed)
    result = IdentityResult(psn_no=msg.psn_no, status=msg.status, action=msg.action, result="recorded",
                            pack=pack.id, adjustments=adjustments)
    return Decision([event, *paid], [result, *adjustments], psn_no=msg.psn_no)
