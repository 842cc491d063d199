"""The mass-withdrawal brake: a vantage point that sees too much fail at once is suspect
(pure: no I/O, no clock reads).

An agent whose own uplink degrades sees many healthy targets fail together; withdrawing
them all would take a fleet out of DNS because of one bad network path. The brake
bounds what may be withdrawn *without quorum* (a single node, or
``min_peers_agree = 0``): in every group of targets (each pool, and all targets
together) of at least ``min_targets``, at most ``floor(max_down_share x size)`` down
targets are withdrawn, those that went down first (ties by address); the others are
*held*: left in DNS as they are, until the share falls back under the limit or peers
confirm (cluster mode decides with quorum, so the brake does not apply there).

Sources of the numbers: Envoy's panic threshold (default 50 %: below that share of
healthy hosts, Envoy ignores health and balances over all hosts) and octodns's
safety thresholds (it refuses plans that delete more than 30 % of a zone's records,
``MAX_SAFE_DELETE_PCENT``). goavail's default is Envoy's 50 %.

Maintenance overrides (``down`` = drain) are an operator's decision, not a probe's:
they are never held and do not count toward the share.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from goavail.health import State

ALL_TARGETS = "all targets"
"""The name of the group of every target (beside the pools)."""


@dataclass(frozen=True, slots=True)
class Engaged:
    """The brake holds withdrawals in one group.

    Attributes:
        group: a pool's name, or :data:`ALL_TARGETS`.
        down: targets of the group decided down (overrides excluded).
        size: targets in the group.
        allowed: how many of them may be withdrawn (``floor(share x size)``).
        held: the targets held in DNS, sorted.
    """

    group: str
    down: int
    size: int
    allowed: int
    held: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BrakeResult:
    """What the brake holds now.

    Attributes:
        held: targets whose withdrawal is held (left in DNS as they are).
        engaged: one entry per group where the brake holds, in group order.
    """

    held: frozenset[str] = frozenset()
    engaged: tuple[Engaged, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.engaged)


def brake(
    groups: Mapping[str, Sequence[str]],
    decisions: Mapping[str, State],
    down_since: Mapping[str, float],
    *,
    max_down_share: float,
    min_targets: int,
    exempt: Collection[str] = (),
    shares: Mapping[str, float] | None = None,
) -> BrakeResult:
    """Which down targets may be withdrawn without quorum, and which are held.

    Args:
        groups: group name -> its targets (each pool; add :data:`ALL_TARGETS` for the
            whole fleet). A target may be in several groups: it is held if any holds it.
        decisions: target -> decided state (missing: UNKNOWN).
        down_since: target -> when its DOWN decision was made (seconds on any clock the
            caller keeps consistent); targets missing here count as the latest.
        max_down_share: the largest share of a group that may be withdrawn, in (0, 1];
            1 turns the brake off.
        min_targets: groups with fewer targets are never braked (fail-open already
            protects a small pool: its last address is never withdrawn).
        exempt: targets under a ``down`` override (not held, not counted).
        shares: group name -> its own ``max_down_share`` (a pool's setting), in (0, 1].

    Returns:
        A :class:`BrakeResult`; empty when no group holds anything.

    Raises:
        ValueError: ``max_down_share`` outside (0, 1] or ``min_targets`` < 1.
    """
    shares = dict(shares or {})
    for share in (max_down_share, *shares.values()):
        if not 0 < share <= 1:
            raise ValueError(f"max_down_share must be in (0, 1], got {share}")
    if min_targets < 1:
        raise ValueError(f"min_targets must be >= 1, got {min_targets}")
    exempt_set = set(exempt)
    held: set[str] = set()
    engaged: list[Engaged] = []
    latest = math.inf
    for group, members in groups.items():
        unique = list(dict.fromkeys(members))
        size = len(unique)
        share = shares.get(group, max_down_share)
        if size < min_targets or share >= 1:
            continue
        down = [
            t
            for t in unique
            if decisions.get(t, State.UNKNOWN) is State.DOWN and t not in exempt_set
        ]
        # the float product can land a hair under an exact integer (0.3 x 10)
        allowed = math.floor(share * size + 1e-9)
        if len(down) <= allowed:
            continue
        down.sort(key=lambda t: (down_since.get(t, latest), t))
        kept = tuple(sorted(down[allowed:]))
        held.update(kept)
        engaged.append(Engaged(group, len(down), size, allowed, kept))
    return BrakeResult(frozenset(held), tuple(engaged))
