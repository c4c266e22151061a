"""Shared test configuration.

Everything under tests/integration is marked ``integration`` (it needs the
real nats-server and PostgreSQL the session starts), so ``-m "not
integration"`` runs the pure tests alone.
"""

from pathlib import Path

import pytest

_INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)
