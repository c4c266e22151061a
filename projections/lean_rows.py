"""One batch of a lean claims fold: COPY lines per inserted table, figures merged per row.

A person-year is a slot per counter (its `YEAR_ADD` position) and the columns
set, so a batch sends one staged row per person-year, not an operation per
event; `merged` hands the rows to `sql.write_merged` with a mask of the columns
this batch set.
"""
from __future__ import annotations

from projections.claims import LINE, SETTLEMENT, WARNING
from projections.model import Table, Upsert
from projections.sql import Merged
from projections.usage import PERSON_YEAR, RULE_TOTAL

KIND = {True: "inpatient", False: "outpatient"}
SPLIT = {inpatient: {what: f"{kind}_{what}" for what in ("count", "medfee", "hifmi", "maf", "hosp", "psn")}
         for inpatient, kind in KIND.items()}
YEAR_ADD = tuple(sorted(PERSON_YEAR.additive))       # every person-year counter, in staging order
AT = {column: i for i, column in enumerate(YEAR_ADD)}
FACTS = {inpatient: tuple(AT[c] for c in ("settlements", "ci_base", "assist_base", *(split[w] for w in (
    "count", "medfee", "hifmi", "maf", "hosp", "psn")))) for inpatient, split in SPLIT.items()}
CANCEL = {inpatient: tuple(AT[c] for c in ("cancelled", "ci_base", "assist_base", split["count"], split["medfee"],
                                              split["psn"])) for inpatient, split in SPLIT.items()}
YEAR_PUT = tuple(c for c in PERSON_YEAR.columns if c not in PERSON_YEAR.additive and c not in PERSON_YEAR.key)
_YEAR_BIT = {column: 1 << i for i, column in enumerate(YEAR_PUT)}
_SETTLEMENT_ADD = tuple(sorted(SETTLEMENT.additive))
_SETTLEMENT_PUT = ("cancelled", "cancel_time", "redecided_status")          # what later events set
_SETTLEMENT_BIT = {column: 1 << i for i, column in enumerate(_SETTLEMENT_PUT)}


class Year:
    """One person-year's figures within a batch: a slot per counter (`YEAR_ADD`), the columns set."""
    __slots__ = ("add", "set")

    def __init__(self) -> None:
        self.add: list = [0] * len(YEAR_ADD)
        self.set: dict = {}


class Rows:
    """One batch of claims output: COPY lines per inserted table, merged figures per row."""

    def __init__(self) -> None:
        self.copy: dict[Table, list[bytes]] = {SETTLEMENT: [], LINE: [], WARNING: []}   # csv_line
        self.years: dict[tuple, Year] = {}
        self.rules: dict[tuple, list] = {}            # (person_key, year, rule_id) → [amount, lines, fund]
        self.upserts: dict[tuple, Upsert] = {}        # settlements moved by later events
        self.escape = False              # some message of the batch needs its strings escaped

    def upsert(self, table: Table, key: tuple) -> Upsert:
        found = self.upserts.get((table.name, key))
        if found is None:
            found = self.upserts[(table.name, key)] = Upsert(table, key)
        return found

    def merged(self) -> list[Merged]:
        """The batch's figures for `sql.write_merged`: added columns, then every column set, then the mask
        of those this batch set."""
        years = [(*key, *y.add, *[y.set.get(c) for c in YEAR_PUT], sum(_YEAR_BIT[c] for c in y.set))
                 for key, y in self.years.items()]
        rules = [(*key, *figures, 1) for key, figures in self.rules.items()]
        settlements = [(*u.key, *(u.add.get(c, 0) for c in _SETTLEMENT_ADD), *(u.set.get(c) for c in _SETTLEMENT_PUT),
                        sum(_SETTLEMENT_BIT[c] for c in u.set)) for u in self.upserts.values()]
        return [(PERSON_YEAR, YEAR_ADD, YEAR_PUT, years), (RULE_TOTAL, ("amount", "lines"), ("fund",), rules),
                (SETTLEMENT, _SETTLEMENT_ADD, _SETTLEMENT_PUT, settlements)]
