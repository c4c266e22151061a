"""An AsyncAPI 3 document generated from the msgspec types, so the contract cannot drift from the code."""
from __future__ import annotations

from typing import Any

import msgspec

from events import ledger, messages, results

_INBOUND = [messages.Medins, messages.PsnIdentity, messages.Enrolment, messages.Settlement,
            messages.SettlementCancel, messages.YearClose, messages.TiltedGrant]
_OUTBOUND = [results.SettlementResult, results.SettlementAdjustment, results.SubsidyResult, results.CancelResult,
             results.IdentityResult, results.GrantResult, results.MedinsResult, results.YearCloseResult,
             results.Rejected]


def _tag(cls: type) -> str:
    return cls.__struct_config__.tag  # type: ignore[attr-defined]


def build_asyncapi() -> dict[str, Any]:
    types = [*_INBOUND, *_OUTBOUND, ledger.Commit]
    schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    msgs: dict[str, Any] = {}
    for cls, schema in zip(types, schemas):
        name = cls.__name__
        msgs[name] = {"name": name, "contentType": "application/json", "payload": schema}
    for cls in _INBOUND:
        tag = _tag(cls)
        reply = results.RESULT_TYPE_FOR[tag].__name__
        channels[f"rpc_{tag}"] = {"address": f"ledger.rpc.{tag}", "messages": {cls.__name__: {"$ref": f"#/components/messages/{cls.__name__}"}}}
        channels[f"in_{tag}"] = {"address": f"platform.in.{tag}", "messages": {cls.__name__: {"$ref": f"#/components/messages/{cls.__name__}"}}}
        operations[f"request_{tag}"] = {
            "action": "receive", "channel": {"$ref": f"#/channels/rpc_{tag}"},
            "reply": {"messages": [{"$ref": f"#/components/messages/{reply}"}]}}
        operations[f"feed_{tag}"] = {"action": "receive", "channel": {"$ref": f"#/channels/in_{tag}"}}
    for cls in _OUTBOUND:
        tag = _tag(cls)
        channels[f"out_{tag}"] = {"address": f"ledger.out.{tag}", "messages": {cls.__name__: {"$ref": f"#/components/messages/{cls.__name__}"}}}
        operations[f"publish_{tag}"] = {"action": "send", "channel": {"$ref": f"#/channels/out_{tag}"}}
    channels["person_events"] = {"address": "ledger.person.{person_key}",
                                 "parameters": {"person_key": {"description": "HMAC-SHA256 of psn_no, 32 hex chars"}},
                                 "messages": {"Commit": {"$ref": "#/components/messages/Commit"}}}
    channels["reference_events"] = {"address": "ledger.ref.{kind}",
                                    "parameters": {"kind": {"enum": ["medins", "year_close", "rejected", "pack"]}},
                                    "messages": {"Commit": {"$ref": "#/components/messages/Commit"}}}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "claims-ledger", "version": "1",
                 "description": "Messages the ledger takes and gives (integration.md) and the events it stores."},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": msgs, "schemas": components},
    }


def main() -> None:
    """`python -m events.asyncapi`: rewrite docs/asyncapi.json from the types (the test checks it is current)."""
    import json
    from pathlib import Path

    doc = Path(__file__).parents[1] / "docs" / "asyncapi.json"
    doc.write_text(json.dumps(build_asyncapi(), ensure_ascii=False, sort_keys=True, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
