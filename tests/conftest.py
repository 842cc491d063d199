"""Session set-up shared by every test.

Before anything else, the pytest process enters a private network namespace
(root only; see :mod:`tests.netns`). Tests marked ``netns`` or ``e2e`` are
skipped when that was not possible.
"""

from __future__ import annotations

import pytest

from tests.netns import enter_private_netns, in_private_netns


def pytest_configure(config: pytest.Config) -> None:
    if not in_private_netns():
        enter_private_netns()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if in_private_netns():
        return
    skip = pytest.mark.skip(reason="needs root and a private network namespace")
    for item in items:
        if "netns" in item.keywords or "e2e" in item.keywords:
            item.add_marker(skip)
