"""Which checks judge which targets, with which thresholds (pure: from the validated
configuration and the run's :class:`~goavail.pools.Publication`, no I/O).

The rules (docs/checks.md, "Checks per pool"):

* a pool's targets are judged by the checks it names (``[[pools]] checks``); a pool that
  names none (and the Go original's pool, a provider section's ``ip_addresses``) by the
  *default checks*: every ``[[checks]]`` entry, or the one ``--type`` probe when the file
  has no ``[[checks]]``;
* a target in several pools is judged by the union of their checks, each probed once
  per ``interval`` whatever the number of pools; its health is the worst of them
  (:func:`goavail.health.worst_of`), one state per target as the planner
  (:func:`goavail.dns.plan.plan_names`), the brake (:mod:`goavail.brake`) and the
  cluster's votes read it;
* thresholds belong to a check (``[[checks]] fall``/``rise``); a pool's
  ``failure_threshold``/``rise_threshold`` replace them for its targets. A (target,
  check) pair has exactly one rise/fall state machine, so two pools that share a target
  and a check must give that check the same thresholds: otherwise it is a config problem
  (reported at the later pool's ``addresses[k]``);
* a ``[[checks]]`` entry that judges no target (every pool names its checks, and none
  names it) is a config problem too, like a pool that no name uses.

:func:`assign` computes an :class:`Assignment` and its problems in one pass; the
:class:`~goavail.checks.multi.CheckSet` runs it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from goavail.config import CheckSection, PoolSection
    from goavail.pools import Publication

Thresholds = tuple[int, int]
"""``(fall, rise)``: consecutive failures to DOWN, consecutive successes to UP."""


def _own(check: CheckSection) -> Thresholds:
    if check.fall is None or check.rise is None:  # pragma: no cover - Config resolves them
        raise ValueError(f"check {check.id!r}: fall/rise not resolved")
    return check.fall, check.rise


@dataclass(frozen=True, slots=True)
class Assignment:
    """The checks that judge each target, and the thresholds of each (check, target).

    Attributes:
        targets: check id -> the targets it judges (each once, in the publication's
            order), for every check of the run in configuration order (a check that
            judges none maps to ``()``).
        overrides: check id -> target -> ``(fall, rise)`` where a pool's thresholds
            replace the check's own; absent: the check's ``fall``/``rise``.
        problems: config problems found while assigning (in
            :class:`~goavail.config.ConfigError`'s format); empty for a valid file.
    """

    targets: dict[str, tuple[str, ...]]
    overrides: dict[str, dict[str, Thresholds]] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    _by_target: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        judges: dict[str, list[str]] = {}
        for check_id, targets in self.targets.items():
            for target in targets:
                judges.setdefault(target, []).append(check_id)
        self._by_target.update((t, tuple(ids)) for t, ids in judges.items())

    @classmethod
    def every(cls, check_ids: Iterable[str], targets: Sequence[str]) -> Assignment:
        """Every check judges every target with its own thresholds (the rule without
        ``[[pools]] checks``)."""
        everyone = tuple(dict.fromkeys(targets))
        return cls({check_id: everyone for check_id in check_ids})

    def checks_of(self, target: str) -> tuple[str, ...]:
        """The ids of the checks that judge ``target``, in configuration order (O(1))."""
        return self._by_target.get(target, ())

    def thresholds(self, check: CheckSection, target: str) -> Thresholds:
        """``(fall, rise)`` of ``check`` for ``target``."""
        return self.overrides.get(check.id, {}).get(target) or _own(check)


def pool_checks(
    sections: Sequence[CheckSection], pool: PoolSection | None
) -> list[tuple[str, Thresholds]]:
    """``(check id, (fall, rise))`` of every check that judges ``pool``'s targets, in the
    pool's order (the default checks in configuration order when it names none).

    Args:
        sections: the run's resolved checks (every id a pool names is among them).
        pool: the ``[[pools]]`` entry, or None for the Go original's pool.
    """
    by_id = {check.id: check for check in sections}
    if pool is None:
        return [(check.id, _own(check)) for check in sections]
    ids = list(by_id) if pool.checks is None else pool.checks
    return [(i, pool.thresholds(*_own(by_id[i]))) for i in ids]


def assign(
    sections: Sequence[CheckSection],
    published: Publication,
    pools: Sequence[PoolSection],
) -> Assignment:
    """The checks that judge each target of a run (see the module's rules).

    Args:
        sections: the run's resolved checks (``[[checks]]``, or the one synthesized
            from ``--type``; :func:`goavail.compose.check_sections`).
        published: what the run publishes (its pools, in order: the Go original's pool
            first, then ``[[pools]]``).
        pools: the ``[[pools]]`` entries (their ``checks`` and thresholds; a pool of
            ``published`` that is not among them, the original's, takes the defaults).

    Returns:
        The :class:`Assignment`; its ``problems`` list every threshold conflict and
        every check that judges nothing (the first pool's thresholds win a conflict).
    """
    settings = {pool.name: (i, pool) for i, pool in enumerate(pools)}
    assigned: dict[str, dict[str, Thresholds]] = {check.id: {} for check in sections}
    source: dict[tuple[str, str], str] = {}  # (check id, target) -> the pool that set it
    problems: list[str] = []
    for pool_name, addresses in published.pools.items():
        index, setting = settings.get(pool_name, (None, None))
        judging = pool_checks(sections, setting)
        for k, target in enumerate(addresses):
            clashes: list[str] = []
            for check_id, wanted in judging:
                have = assigned[check_id].setdefault(target, wanted)
                first = source.setdefault((check_id, target), pool_name)
                if have != wanted:
                    where = f"pool {first!r}" if first in settings else f"[{first}] ip_addresses"
                    clashes.append(
                        f"check {check_id!r} has fall {have[0]}, rise {have[1]} in {where} "
                        f"but fall {wanted[0]}, rise {wanted[1]} here"
                    )
            if clashes and index is not None:
                problems.append(
                    f"pools[{index}].addresses[{k}]: {target!r} is also in another pool "
                    f"with other thresholds ({'; '.join(clashes)}): a target has one "
                    "state machine per check, so give the pools that share it the same "
                    "failure_threshold and rise_threshold"
                )
    for i, check in enumerate(sections):
        if not assigned[check.id]:
            problems.append(
                f"checks[{i}].id: {check.id!r} judges no target (every pool lists its "
                "checks and none lists it)"
            )
    order = {t: n for n, t in enumerate(published.targets)}
    targets = {
        check_id: tuple(sorted(found, key=lambda t: order.get(t, len(order))))
        for check_id, found in assigned.items()
    }
    overrides: dict[str, dict[str, Thresholds]] = {}
    for check in sections:
        check_id, found, own = check.id, assigned[check.id], _own(check)
        changed = {t: pair for t, pair in found.items() if pair != own}
        if changed:
            overrides[check_id] = changed
    return Assignment(targets, overrides, tuple(problems))


def describe_judges(
    assignment: Assignment, sections: Sequence[CheckSection], target: str
) -> list[str]:
    """``"id (fall F, rise R)"`` per check that judges ``target``, for ``goavail validate``."""
    by_id = {check.id: check for check in sections}
    shown = []
    for check_id in assignment.checks_of(target):
        fall, rise = assignment.thresholds(by_id[check_id], target)
        shown.append(f"{check_id} (fall {fall}, rise {rise})")
    return shown


def pools_of(published: Publication) -> Mapping[str, list[str]]:
    """Target -> the pools that hold it, in the publication's pool order."""
    held: dict[str, list[str]] = {}
    for pool_name, addresses in published.pools.items():
        for address in addresses:
            held.setdefault(address, []).append(pool_name)
    return held


__all__ = ["Assignment", "Thresholds", "assign", "describe_judges", "pool_checks", "pools_of"]
