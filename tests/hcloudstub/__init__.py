"""A stateful stand-in for the Hetzner Cloud API, for tests (see :mod:`tests.hcloudstub.server`)."""

from tests.hcloudstub.server import DEFAULT_TOKEN, HcloudStub, StubState

__all__ = ["DEFAULT_TOKEN", "HcloudStub", "StubState"]
