"""The unit tier: no server, no dbt run, seconds in all. Every test here is marked ``unit``.

Nothing in this folder may start PostgreSQL or Redis; the integration tier (tests/python)
holds everything that needs them.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/unit/" in item.nodeid:
            item.add_marker(pytest.mark.unit)
