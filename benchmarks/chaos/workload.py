"""What a scenario sends: persons set up once, then settlements spread over the three transports.

Deterministic for a seed. Amounts are those of `events.samples`
(Linfen 2022, area 141002), but one person in twenty is a heavy user who gets
a quarter of the settlements, at ¥50,000–300,000 each: assistance pays ~5–8%
of a stay, so only they reach the ¥60,000 shared cap (dibao, at_risk) or the
¥300,000 大病 cap (at_risk), many times over and from concurrent transports, and
the cap check has something to hold.
A share of settlements is sent a second time, later, through another transport:
the ledger must answer those ``duplicate`` with the first figures.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from events.money import money
from events import samples as s

TRANSPORTS = ("rpc", "feed", "http")
# The mix of integration.md §3: batch feeds carry the volume, one-stop settlement at the window is
# request/reply, and HTTP is "for systems without NATS". HTTP also costs the most CPU a message on both
# sides (~6 ms against ~1.5 ms for RPC, measured with every process of a scenario on this 2-core
# machine), so it gets a tenth: ~10,000 settlements of the 100,000, and the re-sends.
WEIGHTS = (0.45, 0.45, 0.10)


@dataclass(frozen=True, slots=True)
class Item:
    key: str              # setl_id ("" for set-up messages)
    msg_type: str
    body: bytes
    transport: str

    def subject(self, prefix: str) -> str:
        return f"{prefix}.{self.msg_type}"


@dataclass(frozen=True)
class Workload:
    prefix: str           # keeps persons and setl_ids of scenarios apart ("A", "B", ...)
    persons: int
    settlements: int
    seed: int
    resend_share: float = 0.02

    def psn_no(self, i: int) -> str:
        return s.psn_no_of(i, f"CH{self.prefix}-")

    def setup(self) -> tuple[list[Item], list[list[Item]]]:
        """Hospitals (one at a time, they are barriers), then per person its status and enrolment, in order."""
        hospitals = [Item("", "medins", s.dumps(s.medins(code)), "rpc") for code in s.HOSPITALS]
        statuses = ("dibao", "tekun", "at_risk", "returned_poverty")
        persons = [[Item("", "psn_identity", s.dumps(s.identity(self.psn_no(i), statuses[i % 4])), "rpc"),
                    Item("", "enrolment", s.dumps(s.enrolment(self.psn_no(i))), "rpc")]
                   for i in range(self.persons)]
        return hospitals, persons

    def items(self) -> list[Item]:
        """Every settlement once, in a seeded order and transport, plus the re-sends after their first."""
        rng = random.Random(self.seed)
        items: list[Item] = []
        heavy = max(1, self.persons // 20)
        for n in range(self.settlements):
            if rng.random() < 0.25:
                person, total = rng.randrange(heavy), rng.randrange(50_000, 300_000)
            else:
                person, total = rng.randrange(self.persons), rng.randrange(2_000, 60_000)
            ooc = money(Decimal(total) * rng.randrange(200, 2_000) / 10_000)      # 2%–20% out of catalogue
            month = 1 + rng.randrange(12)
            setl_id = f"CH{self.prefix}-S{n:07d}"
            body = s.dumps(s.settlement(setl_id, self.psn_no(person), total=total, ooc=ooc,
                                        day=f"2022-{month:02d}-{1 + rng.randrange(28):02d}",
                                        hospital=s.HOSPITALS[n % len(s.HOSPITALS)]))
            items.append(Item(setl_id, "settlement", body, rng.choices(TRANSPORTS, WEIGHTS)[0]))
        resends = [(i, rng.choice([t for t in TRANSPORTS if t != items[i].transport]))
                   for i in rng.sample(range(len(items)), int(len(items) * self.resend_share))]
        for i, transport in sorted(resends, reverse=True):      # later in the list: usually after the first
            first = items[i]
            at = min(len(items), i + rng.randrange(200, 2_000))
            items.insert(at, Item(first.key, first.msg_type, first.body, transport))
        return items
