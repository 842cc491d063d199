"""Fixtures of the end-to-end tests: a fresh Cloudflare stand-in and an nftables table."""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from tests.cfstub.server import CloudflareStub
from tests.netns import Nft


@pytest.fixture
def stub() -> Iterator[CloudflareStub]:
    """A fresh Cloudflare stand-in on 127.0.0.1 with the zone ``example.com``."""
    with CloudflareStub() as server:
        server.add_zone("example.com")
        yield server


@pytest.fixture
def nft() -> Iterator[Nft]:
    """An nftables table of the test's own, deleted afterwards (``blackhole``/``clear``)."""
    with Nft() as table:
        yield table


PHASE_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
"""Each test's reports by phase (``setup``, ``call``, ``teardown``), for fixtures that
look at how the test went (a shared cluster is restarted after a failed test)."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report in ``item.stash[PHASE_REPORTS]``."""
    report = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report
