"""The command-line choices that are not in the config file (a value, shared by the CLI,
the composition root and the runtime)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ProbeType = Literal["ip", "tcp"]
ProbeKind = Literal["icmp", "tcp"]

PROBE_KINDS: dict[str, ProbeKind] = {"ip": "icmp", "tcp": "tcp"}
"""``--type`` -> the engine (and the type and id of the check synthesized from it)."""


@dataclass(frozen=True, slots=True)
class Options:
    """Command-line choices that are not in the config file.

    Attributes:
        config_path: the TOML file (re-read on SIGHUP).
        dry_run: when True no DNS write is made (audit records only).
        probe_type: "ip" (ICMP echo) or "tcp" (connect to ``port``).
        provider: DNS provider name (a :data:`goavail.dns.registry.REGISTRY` key):
            ``--dns-provider``'s, or the one :func:`goavail.config.choose_provider` chose.
        explicit_provider: whether ``--dns-provider`` was given: with a top-level
            ``providers`` list it restricts the run to that one provider (see
            :func:`goavail.config.run_providers`).
    """

    config_path: Path
    dry_run: bool = True
    probe_type: ProbeType = "ip"
    provider: str = "cloudflare"
    explicit_provider: bool = False


__all__ = ["PROBE_KINDS", "Options", "ProbeKind", "ProbeType"]
