"""``[[pools]]``, ``[[names]]`` and ``[Brake]``: pools of addresses, the names they serve
(primary, then backups) and the mass-withdrawal brake (see :mod:`goavail.pools`,
:mod:`goavail.dns.plan` and :mod:`goavail.brake`)."""

from __future__ import annotations

import sys
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, field_validator

from goavail.config.errors import _Problems
from goavail.config.gates import FailbackValue
from goavail.config.providers import DnsSection
from goavail.config.values import (
    _DEGRADED_TTL,
    _MODEL_CONFIG,
    _THRESHOLD,
    Within,
    _check_label,
    _IpAddress,
    _is_dns_name,
)
from goavail.dns.model import AllDown


def _check_fqdn(value: str) -> str:
    name = value.lower().removesuffix(".")
    if not _is_dns_name(name, wildcard=True) or "." not in name:
        raise ValueError(f"{value!r} is not a fully qualified name (e.g. 'www.example.com')")
    return sys.intern(name)  # shared by the specs, the reconciler's tables, the records


_DOWN_SHARE = Within(
    0.01,
    1.0,
    below="smaller holds every withdrawal but the first in a large pool",
    above="a share above 1 means nothing: 1 already turns the brake off",
    duration=False,
)
_MIN_TARGETS = Within(
    1,
    1_000_000,
    below="every group has at least one target",
    above="larger never brakes any real fleet: use max_down_share = 1 to turn it off",
    duration=False,
)


class PoolSection(BaseModel):
    """One ``[[pools]]`` entry: addresses (targets) published together.

    Attributes:
        name: the pool's name, referenced by ``[[names]] pools`` (letters, digits,
            ``.``, ``_``, ``-``; unique).
        addresses: the pool's addresses (at least one, canonical text, no
            duplicates). An address may be in several pools: it is probed once.
        ttl: TTL in seconds of the records created for this pool's addresses, or None
            (the provider section's ``ttl``).
        max_down_share: this pool's mass-withdrawal brake share, or None (the
            ``[Brake]`` setting); see :mod:`goavail.brake`.
        checks: the ``[[checks]]`` ids that judge this pool's targets (each once, each
            an existing id: ``Config`` checks both), or None: every ``[[checks]]``
            entry, or the ``--type`` probe when the file has none (see
            :mod:`goavail.judges`).
        failure_threshold: consecutive failures that make each of this pool's checks
            DOWN for its targets, instead of the check's ``fall``; None: the check's.
        rise_threshold: consecutive successes that make them UP, instead of the
            check's ``rise``; None: ``failure_threshold`` when set here, else the
            check's. A target in several pools has one state machine per check, so
            pools sharing a target must agree on the thresholds of their shared checks.
        failback: how this pool's targets come back after being down (``auto``,
            ``after 5m``, ``manual``; see :mod:`goavail.gates`), or None (the
            top-level ``failback``). A target in several pools, or serving several
            names, takes the strictest of their settings.
        all_down: the all-down policy of the names whose primary is this pool, unless
            the name sets its own; None: the provider section's, else ``"fail-open"``.
        degraded_ttl: the lowered TTL (seconds) of the names whose primary is this
            pool, unless the name sets its own; None: the provider section's.
    """

    model_config = _MODEL_CONFIG

    name: Annotated[str, AfterValidator(_check_label)]
    addresses: list[_IpAddress] = Field(min_length=1)
    ttl: Annotated[int, Field(ge=1, le=86400)] | None = None
    max_down_share: Annotated[float, _DOWN_SHARE] | None = None
    checks: list[Annotated[str, AfterValidator(_check_label)]] | None = Field(
        default=None, min_length=1
    )
    failure_threshold: Annotated[int, _THRESHOLD] | None = None
    rise_threshold: Annotated[int, _THRESHOLD] | None = None
    # gated failback (goavail/gates.py)
    failback: FailbackValue | None = None
    all_down: AllDown | None = None
    degraded_ttl: Annotated[int, _DEGRADED_TTL] | None = None

    @field_validator("addresses")
    @classmethod
    def _no_duplicate_addresses(cls, value: list[str]) -> list[str]:
        return DnsSection._no_duplicate_addresses(value)

    def thresholds(self, fall: int, rise: int) -> tuple[int, int]:
        """``(fall, rise)`` of one of this pool's checks whose own are ``fall``, ``rise``:
        the pool's ``failure_threshold``/``rise_threshold`` where set (``rise`` following
        ``failure_threshold`` when only that is set, as ``[[checks]] rise`` follows ``fall``).

        >>> PoolSection(name="eu", addresses=["192.0.2.1"], failure_threshold=5).thresholds(2, 3)
        (5, 5)
        """
        if self.failure_threshold is not None:
            fall = rise = self.failure_threshold
        if self.rise_threshold is not None:
            rise = self.rise_threshold
        return fall, rise


class NameSection(BaseModel):
    """One ``[[names]]`` entry: a name and the pools that serve it.

    Attributes:
        name: the fully qualified name (``"www.example.com"``; a trailing dot is
            allowed; stored lower case without it). It must lie in the zone of the
            provider section that publishes it.
        pools: pool names in priority order: the primary first, then the backups
            that take over, in turn, when no address of the pools before is up
            (see :mod:`goavail.dns.plan`). At least one; each once.
        ttl: TTL in seconds of this name's records, or None (the pool's, else the
            provider section's).
        providers: the providers this name is published to (registry names, each
            once, each one in use and holding the name in its zones), or None: every
            provider in use whose zones hold it (see :func:`goavail.pools.publication`).
        failback: how the addresses of this name's pools come back after being down,
            or None (see :class:`PoolSection`; the strictest setting wins).
        all_down: what the name serves when no address of any of its pools is up:
            ``"fail-open"`` (keep the primary's addresses), ``"backup"`` (keep the
            last pool's: a fallback pool; needs at least two pools) or
            ``"fail-closed"`` (withdraw them all: NODATA); None: the primary pool's,
            else the provider section's, else ``"fail-open"``. See docs/decisions.md.
        degraded_ttl: seconds; while any address of the name is down its managed
            records get this TTL, and the name's TTL again once all are up; None:
            the primary pool's, else the provider section's, else TTLs are not
            managed. Must be lower than the name's TTL.
    """

    model_config = _MODEL_CONFIG

    name: Annotated[str, AfterValidator(_check_fqdn)]
    pools: list[Annotated[str, AfterValidator(_check_label)]] = Field(min_length=1)
    ttl: Annotated[int, Field(ge=1, le=86400)] | None = None
    providers: list[str] | None = Field(default=None, min_length=1)
    # gated failback (goavail/gates.py)
    failback: FailbackValue | None = None
    all_down: AllDown | None = None
    degraded_ttl: Annotated[int, _DEGRADED_TTL] | None = None

    @field_validator("pools")
    @classmethod
    def _each_pool_once(cls, value: list[str]) -> list[str]:
        problems: list[tuple[tuple[str | int, ...], str]] = [
            ((i,), f"{pool!r} is listed twice (also at pools[{value.index(pool)}])")
            for i, pool in enumerate(value)
            if value.index(pool) != i
        ]
        if problems:
            raise _Problems(problems)
        return value

    @field_validator("providers")
    @classmethod
    def _each_provider_once(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        problems: list[tuple[tuple[str | int, ...], str]] = [
            ((i,), f"{name!r} is listed twice (also at providers[{value.index(name)}])")
            for i, name in enumerate(value)
            if value.index(name) != i
        ]
        if problems:
            raise _Problems(problems)
        return value


class BrakeSection(BaseModel):
    """``[Brake]``: the mass-withdrawal brake (see :mod:`goavail.brake`).

    Attributes:
        max_down_share: the largest share of a pool (and of all targets) withdrawn
            without quorum, in (0, 1]; 1 turns the brake off. Default 0.5 (Envoy's
            panic threshold).
        min_targets: pools (and fleets) smaller than this are never braked
            (default 4: fail-open already keeps a small pool's last address).
    """

    model_config = _MODEL_CONFIG

    max_down_share: Annotated[float, _DOWN_SHARE] = 0.5
    min_targets: Annotated[int, _MIN_TARGETS] = 4
