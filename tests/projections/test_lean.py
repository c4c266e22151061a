"""The lean rebuild path gives the tables the full folds give (which test_folds.py checks against the
engine's own state): the same sample traffic, decoded lean and split over one or three shares, read
back from its COPY lines and upserts and compared column by column with the typed rows of the full path."""
from __future__ import annotations

import asyncio
import datetime as dt
import re
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from events import ledger as ev
from events.chain import Unsealed
from events.ledger import COMMIT_ENCODER
from events.upcast import UPCASTERS, decode_event, register
from projections.catalog import PROJECTIONS
from projections.decode import LeanDecoder, decode_message
from projections.lean_claims import NEEDS as CLAIMS_NEEDS
from projections.lean_claims import flow_upserts
from projections.lean_rows import Rows
from projections.load import ShareFold, shares
from projections.model import MemoryTables
from projections.sample import decided, stored_commit, traffic
from projections.source import Raw
from projections.sql import csv_line
from projections.claims import FUND_FLOW

SECRET = b"lean-test-secret-0123456789abcdef"
SEAL_KEY = b"lean-test-seal-key-0123456789abcd"
NAMES = list(PROJECTIONS)
TABLES = {t.name: t for p in PROJECTIONS.values() for t in p.tables}


@pytest.fixture(scope="module")
def stream() -> list[Raw]:
    store = asyncio.run(decided(traffic(300, seed=9)))
    return [Raw(i, *stored_commit(p, c, SECRET, SEAL_KEY)) for i, (p, c) in enumerate(store.commits, 1)]


def full_tables(stream: list[Raw]) -> dict[str, dict[tuple, dict]]:
    model = MemoryTables()
    msgs = [decode_message(r.seq, r.subject, r.data, SEAL_KEY) for r in stream]
    for projection in PROJECTIONS.values():
        state = projection.new_state()
        for msg in msgs:
            model.apply(projection.fold(state, msg))
    return model.tables


_CSV_FIELD = re.compile(r'"((?:[^"]|"")*)"|([^,]*)')


def _csv(line: bytes) -> list:
    """A COPY CSV line with NULL 'null' back to values: quoted → str, bare null → None, bare → JSON."""
    try:
        return msgspec.json.decode(b"[" + line + b"]")
    except msgspec.DecodeError:
        out, text, at = [], line.decode(), 0
        while at <= len(text):
            m = _CSV_FIELD.match(text, at)
            quoted, bare = m.group(1), m.group(2)
            out.append(quoted.replace('""', '"') if quoted is not None else
                       None if bare == "null" else msgspec.json.decode(bare))
            at = m.end() + 1
        return out


def _text(line: bytes, last: int = 14) -> list:
    """A COPY text line without escapes back to values; from column `last` on, the stored bytes."""
    *head, payload = line.split(b"\t", last)
    return [None if f == b"\\N" else f.decode() for f in head] + [payload]


def _commit(line: bytes) -> list:
    *head, results, seal = line.split(b"\t")
    return [None if f == b"\\N" else f.decode() for f in head] + [results, seal.decode()]


def lean_tables(stream: list[Raw], parts: int) -> dict[str, dict[tuple, dict]]:
    """Every share's output over the whole stream, as rows keyed like MemoryTables."""
    tables: dict[str, dict[tuple, dict]] = {}

    def insert(table: str, values: list) -> None:
        t = TABLES[table]
        row = dict(zip(t.columns, values))
        for column in ("seq", "idx"):
            if isinstance(row.get(column), str):
                row[column] = int(row[column])
        tables.setdefault(table, {})[tuple(row[k] for k in t.key)] = row

    merged = []
    for share in shares(parts, len(stream)):
        fold = ShareFold(NAMES, share, len(stream), SEAL_KEY)
        for start in range(0, len(stream), 97):                 # batches, as the reader gives them
            msgs, escapes = fold.decode(stream[start:start + 97])
            msgs = asyncio.run(fold.heads.screen(None, msgs))   # from sequence 1: no database asked
            rows, trail, commits, forged, dead = out = Rows(), [], [], [], []
            fold.fold(msgs, escapes, out)
            assert not forged
            for table, lines in rows.copy.items():
                for line in lines:
                    insert(table.name, _csv(line))
            for line in trail:
                insert("ledger_event", _text(line))
            for line in commits:
                insert("ledger_commit", _commit(line))
            for line in dead:
                insert("dead_letter", _csv(line))
            merged.extend(rows.merged())
        merged.append((FUND_FLOW, ("amount", "lines"), (), [(*u.key, u.add["amount"], u.add["lines"], 0)
                                                             for u in flow_upserts(fold.claims.flows)]))
    for table, add, put, values in merged:                       # as sql.merge_sql merges them
        rows = tables.setdefault(table.name, {})
        n = len(table.key)
        for value in values:
            key, figures, sets, present = value[:n], value[n:n + len(add)], value[n + len(add):-1], value[-1]
            row = rows.get(key)
            if row is None:
                row = rows[key] = dict.fromkeys(table.columns)
                row.update(zip(table.key, key))
                row.update(dict.fromkeys(table.additive, 0))       # NOT NULL DEFAULT 0
            for column, figure in zip(add, figures):
                row[column] = Decimal(str(row[column] or 0)) + figure
            row.update((c, v) for i, (c, v) in enumerate(zip(put, sets)) if present & (1 << i))
    return tables


def same(full: Any, lean: Any) -> bool:
    if full is None or lean is None:
        return full is None and lean is None
    if isinstance(full, bool):
        return full is lean
    if isinstance(full, (Decimal, int)):
        return Decimal(str(full)) == Decimal(str(lean))
    if isinstance(full, dt.datetime):
        return full == dt.datetime.fromisoformat(lean.replace("Z", "+00:00"))
    if isinstance(full, dt.date):
        return full == dt.date.fromisoformat(lean)
    if isinstance(full, bytes):
        return full == (lean if isinstance(lean, bytes) else bytes.fromhex(lean[2:]))
    return full == lean


def assert_same_tables(full: dict, lean: dict) -> None:
    assert set(full) == set(lean)
    for table, rows in full.items():
        keys = {tuple(str(k) for k in key) for key in rows}
        assert keys == {tuple(str(k) for k in key) for key in lean[table]}, table
        by_text = {tuple(str(k) for k in key): row for key, row in lean[table].items()}
        for key, row in rows.items():
            other = by_text[tuple(str(k) for k in key)]
            wrong = {c: (v, other[c]) for c, v in row.items() if not same(v, other[c])}
            assert not wrong, (table, key, wrong)


@pytest.mark.parametrize("parts", [1, 3])
def test_lean_shares_give_the_tables_of_the_full_folds(stream, parts) -> None:
    full = full_tables(stream)
    assert {"settlement", "settlement_line", "person_year", "person_year_rule", "fund_flow", "warning",
            "ledger_event", "ledger_commit", "dead_letter"} <= set(full)
    assert any(r["cancelled"] for r in full["settlement"].values())
    assert any(r["redecided_status"] for r in full["settlement"].values())
    assert_same_tables(full, lean_tables(stream, parts))


def test_lean_decoding_keeps_the_stored_strings_and_the_catalogue_defaults() -> None:
    decoder = LeanDecoder(CLAIMS_NEEDS)
    paid = ev.CriticalIllnessPaid(setl_id="S1", psn_no="P1", year=2022, rule_id="r", clause="c", base=Decimal("10.50"),
                                  cumulative_before=Decimal("0"), deductible=Decimal("5000.0"), ratio=Decimal("0.60"),
                                  cap_limit=None, paid_before=Decimal("0.00"), amount=Decimal("6.30"),
                                  recorded_at=dt.datetime(2022, 3, 5, 2, tzinfo=dt.timezone.utc))
    lean = decoder.event(ev.COMMIT_ENCODER.encode(paid))
    assert (lean.TYPE, lean.amount, lean.deductible, lean.adjustment, lean.recorded_at) == (
        "critical_illness_paid", "6.30", "5000.0", None, "2022-03-05T02:00:00Z")
    assert not hasattr(lean, "psn_no")                       # a projection never sees what it does not need
    assert csv_line((lean.setl_id, lean.amount, lean.cap_limit, True, 3)) == b'"S1","6.30",null,true,3'
    assert csv_line(('say "hi"\n', None, b"\x01"), escape=True) == b'"say ""hi""\n",null,"\\x01"'


def test_an_upcast_event_projects_lean_like_its_current_shape() -> None:
    @register("year_closed_v0")
    def _v0(old):
        return {"type": "year_closed", "admdvs": old["area"], "year": old["year"], "event_id": old["event_id"]}

    try:
        decoder = LeanDecoder({ev.YearClosed: ("admdvs", "year"), ev.LedgerEvent: ("event_id", "recorded_at")})
        stored = msgspec.json.encode({"type": "year_closed_v0", "area": "630000", "year": 2022, "event_id": "e1"})
        lean = decoder.event(stored)
        assert (lean.TYPE, lean.admdvs, lean.year, lean.event_id, lean.recorded_at) == (
            "year_closed", "630000", 2022, "e1", None)
        assert decoder.each([stored]) == [lean]
        with pytest.raises(msgspec.ValidationError):
            decoder.event(b'{"type": "no_such_event"}')
    finally:
        UPCASTERS.pop("year_closed_v0")


def test_shares_cover_the_stream_once() -> None:
    for parts, target in ((1, 0), (2, 7), (3, 3), (5, 3), (4, 1000)):
        covered = [seq for s in shares(parts, target) for seq in range(s.first, s.last + 1)]
        assert covered == list(range(1, target + 1)), (parts, target)
    keys = [f"{i:032x}" for i in range(300)]
    owners = [[s.part for s in shares(3, 10) if s.owns_person(k)] for k in keys]
    assert all(len(o) == 1 for o in owners) and {o[0] for o in owners} == {0, 1, 2}


def test_rows_of_a_batch_merge_per_row() -> None:
    rows = Rows()
    assert rows.upsert(TABLES["person_year"], ("k", 2022)) is rows.upsert(TABLES["person_year"], ("k", 2022))


def test_an_upcaster_of_a_current_type_is_applied_lean_as_by_decode_event() -> None:
    """An old `critical_illness_paid` kept its tag but named the person `person` and gave the amount in fen.
    The lean struct lacks `psn_no`, so it would accept the old shape as it is; it must upcast as the whole
    decoder does."""
    @register("critical_illness_paid")
    def _fen(old):
        if "person" not in old:
            return old
        new = {k: v for k, v in old.items() if k != "person"}
        return {**new, "psn_no": old["person"], "amount": str((Decimal(old["amount"]) / 100).quantize(Decimal("0.01")))}

    try:
        paid = ev.CriticalIllnessPaid(setl_id="S1", psn_no="P1", year=2022, rule_id="r", clause="c",
                                      base=Decimal("10.50"), cumulative_before=Decimal("0"), ratio=Decimal("0.60"),
                                      deductible=Decimal("5000.0"), cap_limit=None, paid_before=Decimal("0.00"),
                                      amount=Decimal("6.30"))
        old = msgspec.json.decode(COMMIT_ENCODER.encode(paid))
        old = {**{k: v for k, v in old.items() if k != "psn_no"}, "person": "P1", "amount": "630"}
        stored = msgspec.json.encode(old)
        decoder = LeanDecoder(CLAIMS_NEEDS)
        whole, lean = decode_event(stored), decoder.event(stored)
        assert whole.amount == Decimal("6.30") and lean.amount == "6.30"
        assert decoder.each([stored, COMMIT_ENCODER.encode(paid)]) == [lean, decoder.event(COMMIT_ENCODER.encode(paid))]
    finally:
        UPCASTERS.pop("critical_illness_paid")
    assert LeanDecoder(CLAIMS_NEEDS).event(stored).amount == "630"      # without it, the old shape read as it is


def test_the_lean_decoder_refuses_what_decode_message_refuses(stream) -> None:
    """The same seal check on both paths: no seal, another key, another subject, an edited event."""
    decoder = LeanDecoder(CLAIMS_NEEDS)
    good = stream[0]
    commit = msgspec.json.decode(good.data)
    bad = [
        (good.subject, msgspec.json.encode({k: v for k, v in commit.items() if k != "seal"})),
        (good.subject, good.data.replace(commit["seal"].encode(), b"0" * 64)),
        (good.subject + ".elsewhere", good.data),
        (good.subject, good.data.replace(b'"event_id":"', b'"event_id":"X', 1)),
        (good.subject, b"not json"),
    ]
    for subject, data in bad:
        with pytest.raises(Unsealed) as whole:
            decode_message(1, subject, data, SEAL_KEY)
        with pytest.raises(Unsealed) as lean:
            decoder.message(1, subject, data, SEAL_KEY)
        assert str(whole.value) == str(lean.value)
    msg = decoder.message(good.seq, good.subject, good.data, SEAL_KEY)
    full = decode_message(good.seq, good.subject, good.data, SEAL_KEY)
    assert (msg.raw_events, msg.results, msg.seal, msg.commit_id, msg.size) == (
        full.raw_events, full.results, full.seal, full.commit_id, full.size)
    assert [e.hash for e in msg.events] == [e.hash for e in full.events]
