"""Probes: the I/O stage that asks each target "are you there?".

Every probe engine implements :class:`goavail.checks.base.Probe`.
"""

from goavail.checks.base import Probe, ProbeResult, ProbeSetupError, ResultCallback

__all__ = ["Probe", "ProbeResult", "ProbeSetupError", "ResultCallback"]
