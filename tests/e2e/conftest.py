"""Fixtures of the end-to-end tests: a fresh Cloudflare stand-in and an nftables table."""

from __future__ import annotations

from collections.abc import Iterator

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
