"""The root of goavail's own exceptions.

Every error class goavail defines for a caller to catch derives from
:class:`GoavailError`, so ``except GoavailError`` catches any of them (after httpx's
``_exceptions.py``, which documents its hierarchy in one place). Each class keeps its
other base (``ValueError`` for a value that cannot be parsed), so what was caught
where before is still caught there.

The hierarchy::

    GoavailError
    ├── SetupError                 the agent cannot start (credentials, AWS settings, ...)
    ├── goavail.config.ConfigError           invalid configuration: every problem, key paths
    ├── goavail.checks.ProbeSetupError       probe sockets or TLS settings unusable
    ├── goavail.dns.providers.ProviderError  a DNS API call failed (after retries)
    ├── goavail.web.ServerError              [Server] listen cannot be bound
    ├── goavail.cluster.serf_agent.SerfAgentError   the Serf child cannot start
    ├── goavail.cluster.serf_rpc.SerfError          Serf's RPC failed
    ├── goavail.cluster.wire.WireError (ValueError) a gossip message is rejected
    └── goavail.cluster.syncnet.SyncError / SyncRefused  the sync port exchange failed
"""

from __future__ import annotations


class GoavailError(Exception):
    """Base class of every exception goavail defines for callers to catch."""


class SetupError(GoavailError):
    """The agent cannot start; the message says why and how to fix it."""


__all__ = ["GoavailError", "SetupError"]
