"""The in-memory provider runs the shared provider contract."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from goavail.dns.audit import AuditLog
from goavail.dns.providers.memory import MemoryProvider
from tests.providers.contract import ProviderContract


class TestMemoryProvider(ProviderContract):
    @pytest.fixture
    def backend(self) -> MemoryProvider:
        return MemoryProvider(dry_run=False, audit=AuditLog())

    @pytest.fixture
    def zone(self) -> str:
        return "example.test"

    @pytest.fixture
    def make_provider(self, backend: MemoryProvider) -> Callable[[bool], MemoryProvider]:
        def make(dry_run: bool) -> MemoryProvider:
            p = MemoryProvider(dry_run=dry_run, audit=AuditLog())
            p.store = backend.store  # one backend shared by every provider of the test
            p._failures = backend._failures
            return p

        return make

    @pytest.fixture
    def second_zone(self) -> str:
        return "example.org"  # the memory backend holds any name

    @pytest.fixture
    def inject_transient(self, backend: MemoryProvider) -> Callable[[int], None]:
        return lambda n: backend.fail_next(n)
