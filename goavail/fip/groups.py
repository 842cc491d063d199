"""The ``[[floating_ips]]`` groups of a configuration: which checks judge their servers
(pure; the checks' rules are :mod:`goavail.judges`' for a pool)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from goavail.config import CheckSection, Config, FloatingIpSection


def group_checks(group: FloatingIpSection, sections: Sequence[CheckSection]) -> list[CheckSection]:
    """The checks that judge ``group``'s servers: the ones its ``checks`` names (in
    ``[[checks]]`` order), else every check of ``sections`` (the ``[[checks]]``
    entries, or the one ``--type`` probe)."""
    if group.checks is None:
        return list(sections)
    wanted = set(group.checks)
    return [s for s in sections if s.id in wanted]


def fip_judges(config: Config, sections: Sequence[CheckSection]) -> set[str]:
    """The ids of the checks (of ``sections``, the run's) that judge a group's servers."""
    return {s.id for group in config.floating_ips for s in group_checks(group, sections)}


def without_fip_judges(
    config: Config, sections: Sequence[CheckSection], problems: Iterable[str]
) -> list[str]:
    """``problems`` without the "judges no target" ones of checks that judge a group's
    servers (:func:`goavail.judges.assign` sees only the DNS targets).

    Args:
        config: the validated configuration.
        sections: the run's checks (``[[checks]]``, or the ``--type`` probe).
        problems: :func:`goavail.judges.assign`'s problems.
    """
    judged = fip_judges(config, sections)
    prefixes = tuple(
        f"checks[{i}].id: {check.id!r} judges no target"
        for i, check in enumerate(sections)
        if check.id in judged
    )
    return [p for p in problems if not (prefixes and p.startswith(prefixes))]
