"""schemathesis against a real `ledger run`: every operation of its OpenAPI document with each role's token.

No answer may be a 5xx, and every answer must be one the document declares, with the declared content
type, headers and schema. A few examples per operation and role in `make test`; `make fuzz` sets
LEDGER_FUZZ_EXAMPLES and LEDGER_FUZZ_SECONDS for a long run (fuzz_budget.py: each test gets an equal
share of the time and stops generating when it is spent, so the run ends by itself).
"""
from __future__ import annotations

import functools
import os

import httpx
import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from fuzz_budget import PHASES, Budget
from ledger_app import LedgerApp, ledger_app  # noqa: F401  (the fixture)
from services.api.app import ApiDeps, create_app
from services.api.supervision import read_routers

EXAMPLES = int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "4"))
BUDGET = float(os.environ.get("LEDGER_FUZZ_SECONDS", "inf"))       # make test: bounded by EXAMPLES
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
ROLES = ("platform", "supervisor", "admin")


@functools.cache
def _document() -> dict:
    """The OpenAPI document `ledger run` serves (the same app; checked against the served one below)."""
    return create_app(ApiDeps(submit=None, tokens={}), routers=read_routers()).openapi_schema.to_schema()


@functools.cache
def _schema():
    return schemathesis.openapi.from_dict(_document())


def _operations() -> list[tuple[str, str]]:
    return sorted((method.upper(), path) for path, ops in _document()["paths"].items() for method in ops)


def test_the_served_document_is_the_one_fuzzed(ledger_app: LedgerApp) -> None:  # noqa: F811
    served = httpx.get(f"{ledger_app.url}/schema/openapi.json", timeout=10).json()
    assert served == msgspec.json.decode(msgspec.json.encode(_document()))   # as JSON (a Decimal default is text)
    assert len(_operations()) >= 16


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method,path", _operations())
def test_fuzz_operation(ledger_app: LedgerApp, method: str, path: str, role: str) -> None:  # noqa: F811
    operation = _schema()[path][method]
    auth = ledger_app.auth(role)
    calls = []
    budget = Budget(BUDGET / (len(_operations()) * len(ROLES)))       # each test its share of the run's time

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=EXAMPLES <= 10, phases=PHASES,
              report_multiple_bugs=False, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def fuzz(case) -> None:
        with budget.example():
            response = case.call(base_url=ledger_app.url, headers=auth, timeout=60)
            calls.append(response.status_code)
            case.validate_response(response, checks=CHECKS)

    fuzz()
    assert calls
    assert ledger_app.proc.poll() is None, ledger_app.log()[-3000:]
