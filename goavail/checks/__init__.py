"""Probes: the I/O stage that asks each target "are you there?".

Every probe engine implements :class:`goavail.checks.base.Probe`;
:class:`ProbeScheduler` submits probes for every target once per interval.
"""

from goavail.checks.base import CLOSED, Probe, ProbeResult, ProbeSetupError, ResultCallback
from goavail.checks.icmp import IcmpProbe
from goavail.checks.scheduler import ProbeScheduler
from goavail.checks.tcp import TcpProbe

__all__ = [
    "CLOSED",
    "IcmpProbe",
    "Probe",
    "ProbeResult",
    "ProbeScheduler",
    "ProbeSetupError",
    "ResultCallback",
    "TcpProbe",
]
