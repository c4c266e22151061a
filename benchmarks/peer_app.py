"""The peer of bench_peer: the workload's rule written the way pyeventsourcing (9.x) documents it.

``python -m benchmarks.peer_app JOB.json`` runs one process, sequentially, with
the library's defaults and the persistence its environment names
(``PERSISTENCE_MODULE=eventsourcing.postgres`` and ``POSTGRES_*``, set by
bench_peer). Per message (shared/bench/peer-workload.md): load the person-year
with ``Application.repository.get``, created on its first settlement; answer a
decided ``setl_id`` as a duplicate and store nothing; otherwise trigger
``StaySettled``, ``CriticalIllnessPaid`` and ``AssistancePaid`` and store them
in one transaction with ``Application.save()``.

Prints ``progress N`` lines while it works and one ``result {json}`` line at the
end: figures over the messages after the warm-up, and what the end checks need
(events in the store by topic, cap used of the sampled persons, the server's
durability settings). Needs the ``bench`` extra (eventsourcing, psycopg).
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event

from benchmarks.peer_workload import ASSISTANCE_RATIO, CAP, CRITICAL_ILLNESS_PLACEHOLDER
from benchmarks.procstat import children, peak_rss_mb, tree_cpu_seconds
from events.money import ZERO, money

PROGRESS_EVERY = 1000


class PersonYear(Aggregate):
    """One person's policy year: the setl_ids decided and the assistance cap used."""

    @staticmethod
    def create_id(psn_no: str, year: int) -> UUID:
        return uuid5(NAMESPACE_URL, f"/person-year/{psn_no}/{year}")

    @event("Created")
    def __init__(self, psn_no: str, year: int) -> None:
        self.psn_no = psn_no
        self.year = year
        self.cap_used = ZERO
        self.decided: dict[str, Decimal] = {}      # setl_id → assistance paid

    @event("StaySettled")
    def settle_stay(self, setl_id: str, amount: Decimal) -> None:
        self.decided[setl_id] = ZERO

    @event("CriticalIllnessPaid")
    def pay_critical_illness(self, setl_id: str, amount: Decimal) -> None:
        pass

    @event("AssistancePaid")
    def pay_assistance(self, setl_id: str, amount: Decimal, cap_used: Decimal) -> None:
        self.decided[setl_id] = amount
        self.cap_used = cap_used


class PeerSettlements(Application):
    def settle(self, psn_no: str, year: int, setl_id: str, amount: Decimal) -> tuple[str, Decimal]:
        """("settled" | "duplicate", assistance paid)."""
        try:
            person_year = self.repository.get(PersonYear.create_id(psn_no, year))
        except AggregateNotFoundError:
            person_year = PersonYear(psn_no, year)
        if setl_id in person_year.decided:
            return "duplicate", person_year.decided[setl_id]
        assistance = min(money(ASSISTANCE_RATIO * amount), CAP - person_year.cap_used)
        person_year.settle_stay(setl_id, amount)
        person_year.pay_critical_illness(setl_id, money(CRITICAL_ILLNESS_PLACEHOLDER * amount))
        person_year.pay_assistance(setl_id, assistance, person_year.cap_used + assistance)
        self.save(person_year)
        return "settled", assistance

    def cap_used(self, psn_no: str, year: int) -> Decimal:
        return self.repository.get(PersonYear.create_id(psn_no, year)).cap_used


def _server_facts(app: PeerSettlements) -> dict[str, Any]:
    """Events in the store by topic, and the durability settings the server ran with."""
    recorder: Any = app.recorder
    table = recorder.events_table_name
    with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(f'SELECT topic, count(*) AS n FROM "{table}" GROUP BY topic')
        topics = {row["topic"].rsplit(".", 1)[-1]: row["n"] for row in curs.fetchall()}
        settings = {}
        for name in ("fsync", "synchronous_commit", "server_version"):
            curs.execute(f"SHOW {name}")
            settings[name] = next(iter(curs.fetchone().values()))
    return {"events_by_topic": topics, "table": table, "settings": settings}


def run(job: dict[str, Any]) -> dict[str, Any]:
    lines = Path(job["messages"]).read_bytes().splitlines()
    warmup, year, postmaster = job["warmup"], job["year"], job["postmaster_pid"]
    app = PeerSettlements()
    latencies: list[float] = []
    answers = {"settled": 0, "duplicate": 0}
    perf, loads = time.perf_counter, json.loads
    for i, line in enumerate(lines):
        if i == warmup:
            started, cpu0, server0 = perf(), time.process_time(), tree_cpu_seconds(postmaster)
        t0 = perf()
        message = loads(line)
        answer, _ = app.settle(message["psn_no"], year, message["setl_id"], Decimal(message["inscp_scp_amt"]))
        if i >= warmup:
            latencies.append(perf() - t0)
        answers[answer] += 1
        if (i + 1) % PROGRESS_EVERY == 0:
            print(f"progress {i + 1}", flush=True)
    seconds = perf() - started
    cpu, server_cpu = time.process_time() - cpu0, tree_cpu_seconds(postmaster) - server0
    backends_rss = max((peak_rss_mb(pid) for pid in children(postmaster)), default=0.0)
    facts = _server_facts(app)
    caps = {psn: str(app.cap_used(psn, year)) for psn in job["sample"]}
    app.close()
    latencies.sort()
    return {"messages": len(lines), "window_messages": len(latencies), "window_seconds": seconds,
            "answers": answers, "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000,
            "client_cpu_s": cpu, "server_cpu_s": server_cpu,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "server_backend_peak_rss_mb": backends_rss, "caps": caps,
            "persistence": os.environ.get("PERSISTENCE_MODULE", ""), **facts}


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    print("result " + json.dumps(run(job)), flush=True)


if __name__ == "__main__":
    main()
