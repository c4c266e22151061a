"""One row per measurement, always beside a baseline run in the same process (the machine is shared)."""
from __future__ import annotations

import json
import platform
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"


@dataclass
class Row:
    name: str
    value: float
    unit: str
    baseline_name: str = ""
    baseline_value: float | None = None
    target: str = ""
    met: bool | None = None
    notes: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if not self.baseline_value:
            return None
        return self.value / self.baseline_value


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_table(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="claims-ledger benchmarks")
    for col in ("benchmark", "value", "baseline", "ratio", "target", "met"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.name, f"{r.value:,.1f} {r.unit}",
                      f"{r.baseline_name} {r.baseline_value:,.1f}" if r.baseline_value else "-",
                      f"{r.ratio:.2f}" if r.ratio is not None else "-", r.target,
                      "-" if r.met is None else ("yes" if r.met else "NO"))
    Console().print(table)


def write_json(rows: list[Row], name: str = "latest") -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "rows": [asdict(r) | {"ratio": r.ratio} for r in rows],
    }
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    return path
