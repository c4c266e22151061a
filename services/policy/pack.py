"""Policy packs: effective-dated parameter files validated by msgspec on load (design.md §3).

Every parameter carries the clause it comes from, or `source = "default, not in
text"` where the policy text is silent (policy.md §10). Rule formulas are named
here and implemented in `services.policy.formulas`; the pack only says which
formula, for whom, with which figures.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Literal

import msgspec

from events import codes
from services.policy.decision import Rejection

DEFAULT_PACK_DIR = Path(__file__).parent / "packs"
NOT_IN_TEXT = "default, not in text"


class CriticalIllnessTerms(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    deductible: Decimal
    ratio: Decimal
    clause: str
    rule_id: str
    cap: Decimal | None = None        # absent = no cap (不设封顶线)
    source: str = "text"


class CriticalIllnessTilt(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    statuses: list[str]
    deductible_factor: Decimal
    ratio: Decimal
    keep_base_cap: bool
    clause: str
    rule_id: str
    source: str = "text"


class SubsidyRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rule_id: str
    statuses: list[str]
    clause: str
    fund: str | None = "assistance"
    source: str = "text"
    ratio: Decimal | None = None
    ratio_by_year: dict[str, Decimal] = {}
    fixed: Decimal | None = None
    minimum: Decimal | None = None
    years: list[int] = []            # [first, last] inclusive; empty = every year
    minor_only: bool = False


Formula = Literal[
    "share_of_remaining", "share_above_annual_threshold", "top_up_to_share_of_in_scope",
    "top_up_with_other_pay", "share_of_compliant_left", "share_of_ooc_within_control",
]


class LineRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rule_id: str
    formula: Formula
    statuses: list[str]               # empty = every status
    clause: str
    source: str = "text"
    ratio: Decimal | None = None
    threshold: Decimal | None = None
    threshold_income_share: Decimal | None = None   # threshold = share × prev-year income of the pack
    target: Decimal | None = None
    counter: Literal["shared", "own", "none"] = "shared"
    own_cap: Decimal | None = None
    in_province_only: bool = False
    diagnoses: list[str] = []         # ICD-10 prefixes; empty = any
    years: list[int] = []
    kind: Literal["inpatient", "chronic", "special"] = "inpatient"
    include_no_status: bool = False   # also for a patient with no status (临汾 二(四)3 特殊病患者)


class OocControl(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rule_id: str
    statuses: list[str]
    shares: dict[str, Decimal]        # ooc_class → share of medfee_sumamt
    clause: str
    source: str = "text"


class SeriousDisease(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    prefix: str
    name: str
    limit: Decimal


class SingleDiseaseRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rule_id: str
    hospital_rule_id: str
    ratio_by_status: dict[str, Decimal]
    diseases: list[SeriousDisease]
    clause: str
    diseases_source: str = NOT_IN_TEXT
    source: str = "text"


class WarningRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: str
    measure: Literal["employee_burden", "inpatient_remaining"]
    clause: str
    threshold_by_year: dict[str, Decimal] = {}
    income_share: Decimal | None = None   # threshold = share × prev-year income of the pack
    insutype: str | None = None
    source: str = "text"


class YearValue(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    by_year: dict[str, Decimal]
    clause: str
    source: str = "text"


class Pack(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    version: str
    name: str
    admdvs_prefixes: list[str]
    effective_from: dt.date
    statuses: list[str]               # policy.md §2 order: ties go to the first
    shared_cap: Decimal
    shared_cap_clause: str
    status_caps: dict[str, Decimal]   # status → shared annual limit; absent = uncapped
    ci_outpatient: bool
    ci_outpatient_source: str
    critical_illness: CriticalIllnessTerms
    critical_illness_tilts: list[CriticalIllnessTilt]
    subsidy: list[SubsidyRule]
    inpatient: list[LineRule]
    outpatient: list[LineRule]
    green_channel_statuses: list[str]
    green_channel_clause: str
    effective_to: dt.date | None = None
    ooc_control: OocControl | None = None
    single_disease: SingleDiseaseRule | None = None
    retroactive_days: dict[str, int] = {}
    retroactive_clause: str = ""
    warnings: list[WarningRule] = []
    prev_year_income: YearValue | None = None
    contribution_std: YearValue | None = None
    # status → rule whose own counter is the cap that binds it, shown as `cap` (临汾 二(四)2, policy.md §12)
    cap_counters: dict[str, str] = {}
    digest: str = ""

    def covers(self, admdvs: str, on: dt.date) -> bool:
        return (any(admdvs.startswith(p) for p in self.admdvs_prefixes)
                and self.effective_from <= on
                and (self.effective_to is None or on <= self.effective_to))

    def knows(self, status: str) -> bool:
        return status in self.statuses

    def status_cap(self, status: str | None) -> Decimal | None:
        return None if status is None else self.status_caps.get(status)

    def income_threshold(self, share: Decimal, year: int) -> Decimal:
        """share × the previous year's income the pack gives for `year`; never a silent zero (policy.md §12)."""
        income = self.prev_year_income.by_year.get(str(year)) if self.prev_year_income is not None else None
        if income is None:
            raise MissingParameter("prev_year_income", year, self.id,
                                   self.prev_year_income.clause if self.prev_year_income else "")
        return share * income

    def own_cap_of(self, rule_id: str) -> Decimal | None:
        return next((r.own_cap for r in (*self.inpatient, *self.outpatient) if r.rule_id == rule_id), None)


class MissingParameter(Rejection):
    """A rule needs a yearly figure the pack does not have: the message is refused, never paid 0."""

    def __init__(self, parameter: str, year: int, pack_id: str, clause: str = ""):
        where = f" ({clause})" if clause else ""
        super().__init__(codes.MISSING_PARAMETER, f"pack {pack_id} has no `{parameter}` for {year}{where}; "
                                                  f"extend the pack and re-drive this message")
        self.parameter, self.year = parameter, year


class PackError(ValueError):
    """A pack file that does not validate: the ledger refuses to start on it."""


def load_pack(path: Path) -> Pack:
    raw = path.read_bytes()
    try:
        pack = msgspec.convert(tomllib.loads(raw.decode()), Pack, strict=False)
    except (msgspec.ValidationError, tomllib.TOMLDecodeError) as exc:
        raise PackError(f"{path.name}: {exc}") from exc
    unknown = {s for rule in (*pack.inpatient, *pack.outpatient, *pack.subsidy) for s in rule.statuses}
    unknown |= set(pack.status_caps) - set(pack.statuses)
    unknown -= set(pack.statuses)
    if unknown:
        raise PackError(f"{path.name}: statuses not declared in the pack: {sorted(unknown)}")
    for status, rule_id in pack.cap_counters.items():
        if status not in pack.statuses or pack.own_cap_of(rule_id) is None:
            raise PackError(f"{path.name}: cap_counters[{status!r}] must name a declared status and a rule "
                            f"with an own_cap, got {rule_id!r}")
    return msgspec.structs.replace(pack, digest=hashlib.sha256(raw).hexdigest()[:16])


class PackSet:
    """All packs known to this process; chooses by area code prefix and service date."""

    def __init__(self, packs: list[Pack]):
        self.packs = sorted(packs, key=lambda p: p.effective_from, reverse=True)
        self.by_id = {p.id: p for p in packs}
        self._by_area: dict[tuple[str, dt.date], Pack | None] = {}    # every settlement asks: answer once

    @classmethod
    def from_dir(cls, directory: Path = DEFAULT_PACK_DIR) -> PackSet:
        files = sorted(Path(directory).glob("*.toml"))
        if not files:
            raise PackError(f"no policy packs (*.toml) in {directory}")
        return cls([load_pack(f) for f in files])

    def for_area(self, admdvs: str, on: dt.date) -> Pack | None:
        """The newest pack in force on `on` for the area (policy.md §11: the service date decides)."""
        key = (admdvs, on)
        try:
            return self._by_area[key]
        except KeyError:
            pass
        found = next((p for p in self.packs if p.covers(admdvs, on)), None)
        if len(self._by_area) >= 100_000:
            self._by_area.clear()
        self._by_area[key] = found
        return found

    def for_identity(self, admdvs: str, begndate: dt.date) -> Pack | None:
        """A status recognised before a pack began still counts once the pack is in force."""
        return self.for_area(admdvs, begndate) or next(
            (p for p in reversed(self.packs)
             if any(admdvs.startswith(x) for x in p.admdvs_prefixes)
             and (p.effective_to is None or begndate <= p.effective_to)), None)
