"""One exception root: every error goavail defines for callers derives from GoavailError,
and keeps the base callers caught before (ValueError for the wire format)."""

from __future__ import annotations

import pytest

from goavail.checks.base import ProbeSetupError
from goavail.cluster.serf_agent import SerfAgentError, SyncPortError
from goavail.cluster.serf_rpc import SerfConnectionError, SerfError, SerfRPCError
from goavail.cluster.syncnet import SyncError, SyncRefused
from goavail.cluster.wire import WireError
from goavail.config import ConfigError
from goavail.dns.providers.base import ProviderError
from goavail.errors import GoavailError, SetupError
from goavail.web import ServerError


@pytest.mark.parametrize(
    "error",
    [
        ConfigError,
        ProbeSetupError,
        ProviderError,
        SerfAgentError,
        SyncPortError,
        SerfError,
        SerfRPCError,
        SerfConnectionError,
        ServerError,
        SetupError,
        SyncError,
        SyncRefused,
        WireError,
    ],
)
def test_every_error_class_derives_from_the_root(error: type[Exception]) -> None:
    assert issubclass(error, GoavailError)


def test_the_wire_error_is_still_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^tag"):
        raise WireError("tag")
