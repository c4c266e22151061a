"""The AsyncAPI document is generated from the types and committed; it must not drift."""
import json
from pathlib import Path

from events.asyncapi import build_asyncapi
from events.messages import MSG_TYPES

DOC = Path(__file__).parents[2] / "docs" / "asyncapi.json"


def test_every_inbound_type_has_rpc_and_feed_channels():
    doc = build_asyncapi()
    addresses = {c["address"] for c in doc["channels"].values()}
    for tag in MSG_TYPES:
        assert f"ledger.rpc.{tag}" in addresses
        assert f"platform.in.{tag}" in addresses
    assert "ledger.out.settlement_adjustment" in addresses


def test_committed_document_is_current():
    expected = json.loads(json.dumps(build_asyncapi(), ensure_ascii=False, sort_keys=True))
    assert json.loads(DOC.read_text()) == expected, "regenerate docs/asyncapi.json (see events/asyncapi.py)"
