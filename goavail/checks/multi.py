"""Several checks per target (``[[checks]]``): one engine, schedule and rise/fall state
machine per check, and the target's health as the worst of its checks (flipper).

Each configured check is a :class:`Check`: its own probe engine (ICMP, TCP, HTTP(S)
or script), its own :class:`~goavail.checks.scheduler.ProbeScheduler` at the
check's ``interval``, and its own :class:`~goavail.health.Health` per target with
the check's ``fall``/``rise``. A :class:`CheckSet` holds them all and combines a
target's check states with :func:`goavail.health.worst_of`; it calls
``on_verdict`` only when a target's combined state changes, which is where the
agent's decision stage takes over.

This is the only probe pipeline: without ``[[checks]]`` the ``--type`` probe is one
synthesized check (:func:`goavail.compose.check_sections`) run by a set in *single*
mode, which reports it as the target's own health: no per-check log lines, the
transition worded as the Go original's ("after 2 consecutive failures"), and its
results counted in the agent's :class:`~goavail.stats.ProbeStats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from goavail.checks.base import CLOSED, Probe, ProbeResult, ProbeSetupError
from goavail.checks.icmp import IcmpProbe
from goavail.checks.scheduler import ProbeScheduler
from goavail.checks.tcp import TcpProbe
from goavail.config.checks import CheckSection
from goavail.health import Health, State, Transition, observe, worst_of
from goavail.judges import Assignment
from goavail.stats import RTT_BUCKETS, ProbeStats

if TYPE_CHECKING:
    from goavail.checks.http import HttpProbe

# The http and script engines are imported only for a check of their type (see
# build_check_probe); httpx and cryptography load only when an http(s) engine starts.

log = logging.getLogger("goavail.checks")

VerdictCallback = Callable[[str, State, State, str], None]
"""``on_verdict(target, old, new, why)``: a target's combined state changed."""

_SCHEDULE_KEYS = frozenset({"interval", "fall", "rise"})
"""Check settings a reload applies without a new engine (and without forgetting health)."""


def _number(value: float | int | None, name: str, check: CheckSection) -> float:
    if value is None:  # pragma: no cover - Config resolves every default
        raise ValueError(f"check {check.id!r}: {name} not resolved")
    return value


def build_check_probe(check: CheckSection) -> Probe:
    """The probe engine of one (resolved) ``[[checks]]`` entry; not started yet."""
    timeout = _number(check.timeout, "timeout", check)
    if check.type == "icmp":
        return IcmpProbe(timeout=timeout)
    if check.type == "tcp":
        return TcpProbe(int(_number(check.port, "port", check)), timeout=timeout)
    if check.type == "script":
        from goavail.checks.script import ScriptProbe

        assert check.command is not None
        return ScriptProbe(check.command, timeout, check_id=check.id)
    from goavail.checks.http import HttpProbe

    return HttpProbe(
        scheme=check.type,
        port=int(_number(check.port, "port", check)),
        path=check.path or "/",
        method=check.method or "GET",
        host=check.host,
        expected_status=check.expected_status,
        body_contains=check.body_contains,
        tls_verify=check.tls_verify is not False,
        ca_file=check.ca_file,
        timeout=timeout,
        check_id=check.id,
    )


def describe_check(check: CheckSection) -> str:
    """One line saying what a (resolved) check does, for the start-up log.

    >>> describe_check(CheckSection(id="web", type="https", port=443, path="/", method="GET"))
    'https GET https://<target>:443/'
    """
    if check.type == "icmp":
        return "icmp echo"
    if check.type == "tcp":
        return f"tcp connect to <target>:{check.port}"
    if check.type == "script":
        return f"script {shlex.join(check.command or [])} <target>"
    text = f"{check.type} {check.method} {check.type}://<target>:{check.port}{check.path}"
    if check.host:
        text += f" (Host{' and SNI' if check.type == 'https' else ''} {check.host})"
    if check.expected_status:
        text += f", status {'/'.join(str(s) for s in check.expected_status)}"
    if check.body_contains:
        text += f", body contains {check.body_contains!r}"
    if check.type == "https" and check.tls_verify is False:
        text += ", certificate NOT verified"
    return text


def check_problems(checks: Sequence[CheckSection]) -> list[str]:
    """Problems only this machine can tell (programs and CA files that are missing),
    in the :class:`goavail.config.ConfigError` format; empty when all is well."""
    problems: list[str] = []
    for i, check in enumerate(checks):
        if check.command is not None:
            from goavail.checks.script import command_problem

            problem = command_problem(check.command)
            if problem is not None:
                problems.append(f"checks[{i}].command[0]: {problem}")
        if check.ca_file is not None and not check.ca_file.is_file():
            problems.append(f"checks[{i}].ca_file: {str(check.ca_file)!r} is not a readable file")
    return problems


def _probe_settings(check: CheckSection) -> dict[str, object]:
    return check.model_dump(exclude=set(_SCHEDULE_KEYS))


class Check:
    """One configured check on the targets it judges.

    Args:
        section: the resolved ``[[checks]]`` entry.
        targets: the target addresses it judges (all of them, unless ``[[pools]]
            checks`` say otherwise: :mod:`goavail.judges`).
        on_transition: ``on_transition(check, target, transition, result)`` when
            this check's state of a target changes.
        stats: where every result is counted (RTT histogram, failures), or None.
        thresholds: target -> ``(fall, rise)`` where a pool's thresholds replace the
            check's own (``[[pools]] failure_threshold``/``rise_threshold``).

    Attributes:
        id: the check's id.
        probe: the engine (started by :meth:`CheckSet.start` / ``prepare``).
        scheduler: probes every target once per ``interval``.
        health: target -> this check's health of it (the targets it judges).
        last: target -> the latest result (not kept in the steady UP state with
            debug logging off: see :meth:`on_result`).
        thresholds: target -> ``(fall, rise)`` overriding ``fall``/``rise``.
    """

    def __init__(
        self,
        section: CheckSection,
        targets: Sequence[str],
        on_transition: Callable[[Check, str, Transition, ProbeResult], None],
        stats: ProbeStats | None = None,
        thresholds: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        self.section = section
        self.stats = stats
        self._label = "probe" if stats is not None else f"check {section.id}: probe"
        self.id = section.id
        self.fall = int(_number(section.fall, "fall", section))
        self.rise = int(_number(section.rise, "rise", section))
        self.thresholds: dict[str, tuple[int, int]] = dict(thresholds or {})
        self.probe = build_check_probe(section)
        self.health: dict[str, Health] = {t: Health() for t in targets}
        self.last: dict[str, ProbeResult] = {}
        self.results = 0
        """Results received so far, every target's (the ``probes`` probe of ``/_health``
        counts full rounds with it)."""
        self._on_transition = on_transition
        self._debug = log.isEnabledFor(logging.DEBUG)
        self.scheduler = ProbeScheduler(
            self.probe, _number(section.interval, "interval", section), self.on_result
        )
        self.scheduler.set_targets(list(self.health))
        self.task: asyncio.Task[None] | None = None

    def on_result(self, target: str, result: ProbeResult) -> None:
        """Fold one probe result into the target's health for this check."""
        health = self.health.get(target)
        if health is None:
            return  # target dropped by a reload
        self.results += 1
        stats = self.stats  # O(1) counters, read at scrape time (goavail/web/metrics.py)
        if result.ok:
            if stats is not None:
                rtt = result.rtt or 0.0
                stats.rtt_counts[bisect_left(RTT_BUCKETS, rtt)] += 1
                stats.rtt_sum += rtt
            if health.state is State.UP and not self._debug:
                # The steady state, 10,000s of times per second: observe()'s UP + ok case.
                self.last[target] = result
                self.health[target] = Health(State.UP, health.successes + 1, 0)
                return
        elif result.error == CLOSED.error:
            return  # the engine was swapped or closed: not a verdict on the target
        elif stats is not None:
            stats.failed += 1
        self.last[target] = result
        if self._debug:
            log.debug(
                "%s %s %s %s",
                self._label,
                target,
                "ok" if result.ok else "failed",
                f"rtt={result.rtt * 1000:.2f}ms" if result.rtt is not None else result.error,
            )
        fall, rise = self.thresholds.get(target) or (self.fall, self.rise)
        self.health[target], transition = observe(health, result.ok, fall=fall, rise=rise)
        if transition is not None:
            self._on_transition(self, target, transition, result)

    def set_targets(
        self, targets: Sequence[str], thresholds: Mapping[str, tuple[int, int]] | None = None
    ) -> None:
        """Probe ``targets`` from the next round on; new ones start unknown, dropped ones
        are forgotten; ``thresholds`` (target -> ``(fall, rise)``) replace the overrides
        of the check's own ``fall``/``rise``."""
        self.thresholds = dict(thresholds or {})
        keep = set(targets)
        removed = [t for t in self.health if t not in keep]
        self.health = {t: self.health.get(t, Health()) for t in targets}
        for t in removed:
            self.last.pop(t, None)
        if removed and (http := _http_probe(self.probe)) is not None:
            http.forget(removed)
        self.scheduler.set_targets(list(targets))

    def state(self, target: str) -> State:
        """This check's state of ``target`` (UNKNOWN when not probed yet)."""
        health = self.health.get(target)
        return State.UNKNOWN if health is None else health.state


@dataclass(slots=True)
class Prepared:
    """A reload's new check list, engines built and started (see :meth:`CheckSet.prepare`)."""

    sections: list[CheckSection]
    fresh: dict[str, Check] = field(default_factory=dict)
    """Checks that need a new engine (new id, or changed probe settings), by id."""
    single: bool = False
    """The sections are the one check synthesized from ``--type`` (see :class:`CheckSet`)."""
    assignment: Assignment | None = None
    """Which checks judge which targets (:mod:`goavail.judges`); None: every check
    judges every target with its own thresholds."""


class CheckSet:
    """Every configured check, and each target's combined ("worst of") state.

    Args:
        sections: the resolved ``[[checks]]`` entries (may be empty: then the set
            does nothing, and :meth:`run` just waits).
        targets: the target addresses.
        on_verdict: ``on_verdict(target, old, new, why)``, called on the event loop
            when a target's combined state changes (``why`` is a log-ready text).
        single: the sections are the one check synthesized from ``--type``: its
            transitions are not logged here, ``why`` reads "after N consecutive
            failures[, last error: E]" (the Go original's words), its results are
            counted in ``stats``, and a reload that changes its engine keeps the
            targets' health (a new engine is not a new opinion of the targets).
        stats: the agent's probe counters (fed in single mode only).
        assignment: which checks judge which targets, with which thresholds
            (``[[pools]] checks``, ``failure_threshold``, ``rise_threshold``; see
            :mod:`goavail.judges`); None: every check judges every target with its
            own ``fall``/``rise``. Each check probes each of its targets once per
            ``interval``, however many pools hold the target.

    Lifecycle: ``await start()``, ``await run()`` in a task (cancel it to stop),
    ``await close()``. A reload: ``prepared = await prepare(sections)``, then
    either ``retired = commit(prepared, targets)`` and ``await close_checks(retired)``,
    or ``await discard(prepared)``.

    Attributes:
        checks: check id -> :class:`Check`, in configuration order.
        verdicts: target -> combined state (the worst of the checks that judge it).
        assignment: the :class:`~goavail.judges.Assignment` in force.
    """

    def __init__(
        self,
        sections: Sequence[CheckSection],
        targets: Sequence[str],
        on_verdict: VerdictCallback,
        *,
        single: bool = False,
        stats: ProbeStats | None = None,
        assignment: Assignment | None = None,
    ) -> None:
        self.targets = list(targets)
        self.on_verdict = on_verdict
        self.single = single
        self.stats = stats
        self.assignment = assignment or Assignment.every((s.id for s in sections), self.targets)
        self.checks: dict[str, Check] = {s.id: self._check(s, single) for s in sections}
        self.verdicts: dict[str, State] = dict.fromkeys(self.targets, State.UNKNOWN)
        self._group: asyncio.TaskGroup | None = None

    def __len__(self) -> int:
        return len(self.checks)

    def _check(
        self, section: CheckSection, single: bool, assignment: Assignment | None = None
    ) -> Check:
        stats = self.stats if single else None
        assignment = assignment or self.assignment
        targets = assignment.targets.get(section.id, tuple(self.targets))
        overrides = assignment.overrides.get(section.id)
        return Check(section, targets, self._on_transition, stats, overrides)

    @property
    def results(self) -> int:
        """Results of the slowest check so far, in units of all targets (0 without
        checks): a full round of every check has passed when this grew by the number
        of targets. A check judging ``n`` of ``T`` targets counts each of its results
        ``T / n`` times (exactly: ``results * T // n``, which grows by ``T`` every ``n``
        results); a check judging none is left out."""
        total = len(self.targets)
        return min(
            (c.results * total // len(c.health) for c in self.checks.values() if c.health),
            default=0,
        )

    def judges(self, target: str) -> tuple[str, ...]:
        """The ids of the checks that judge ``target``, in configuration order."""
        return self.assignment.checks_of(target)

    @property
    def single_check(self) -> Check | None:
        """The check synthesized from ``--type`` (single mode), else None."""
        return next(iter(self.checks.values()), None) if self.single else None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start every engine.

        Raises:
            ProbeSetupError: an engine cannot start (those started are closed again).
        """
        await _start_all(list(self.checks.values()))

    async def run(self) -> None:
        """Run every check's scheduler until cancelled (checks added by a reload too)."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            try:
                for check in self.checks.values():
                    self._spawn(check)
                await asyncio.Future()  # until cancelled
            finally:
                self._group = None

    def _spawn(self, check: Check) -> None:
        if self._group is not None and check.task is None:
            check.task = self._group.create_task(check.scheduler.run(), name=f"check-{check.id}")

    async def close(self) -> None:
        """Stop every scheduler and close every engine (probes in flight end ``closed``)."""
        await self.close_checks(list(self.checks.values()))

    @staticmethod
    async def close_checks(checks: Iterable[Check]) -> None:
        """Stop the schedulers of ``checks`` and close their engines."""
        checks = list(checks)
        for check in checks:
            check.scheduler.stop()
        for check in checks:
            await check.probe.close()

    # -- reload -------------------------------------------------------------------------

    async def prepare(
        self,
        sections: Sequence[CheckSection],
        *,
        single: bool = False,
        assignment: Assignment | None = None,
    ) -> Prepared:
        """Build and start the engines a new check list needs; change nothing yet.

        A check whose id exists with the same probe settings (and the same mode,
        ``single`` or not) keeps its engine and its health (a changed ``interval``,
        ``fall`` or ``rise``, and a changed ``assignment`` of targets and thresholds,
        apply at commit).

        Raises:
            ProbeSetupError: an engine cannot start (nothing is left running).
        """
        prepared = Prepared(list(sections), single=single, assignment=assignment)
        for section in sections:
            old = self.checks.get(section.id)
            if (
                old is None
                or single != self.single
                or _probe_settings(old.section) != _probe_settings(section)
            ):
                prepared.fresh[section.id] = self._check(section, single, assignment)
        await _start_all(list(prepared.fresh.values()))
        return prepared

    async def discard(self, prepared: Prepared) -> None:
        """Close the engines of a prepared reload that is not applied."""
        await self.close_checks(prepared.fresh.values())

    def commit(self, prepared: Prepared, targets: Sequence[str]) -> list[Check]:
        """Switch to the prepared checks and ``targets``; never fails, never waits.

        Each check then judges the targets the prepared assignment gives it (all
        ``targets`` without one): a (target, check) pair new to it starts UNKNOWN,
        a pair dropped is forgotten, a kept pair keeps its health (new thresholds
        apply from its next result). Targets whose combined state changes because
        checks were added or removed (for them) are reported through ``on_verdict``
        (targets new in ``targets`` start UNKNOWN and are not). Returns the checks
        taken out of service: pass them to :meth:`close_checks`.
        """
        old_targets = set(self.targets)
        self.targets = list(targets)
        assignment = prepared.assignment or Assignment.every(
            (s.id for s in prepared.sections), self.targets
        )
        self.assignment = assignment
        old = self.checks
        carry = prepared.single and self.single
        self.single = prepared.single
        checks: dict[str, Check] = {}
        for section in prepared.sections:
            check = prepared.fresh.get(section.id)
            if check is not None and carry and section.id in old:
                check.health = {**check.health, **old[section.id].health}
                check.last = dict(old[section.id].last)
            if check is None:
                check = old[section.id]
                check.section = section
                check.fall = int(_number(section.fall, "fall", section))
                check.rise = int(_number(section.rise, "rise", section))
                interval = _number(section.interval, "interval", section)
                check.scheduler.reconfigure(
                    probe=check.probe, interval=interval, targets=check.scheduler.targets
                )
            check.set_targets(
                assignment.targets.get(section.id, ()), assignment.overrides.get(section.id)
            )
            checks[section.id] = check
        retired = [c for cid, c in old.items() if checks.get(cid) is not c]
        for check in retired:
            check.scheduler.stop()
        self.checks = checks
        for check in checks.values():
            self._spawn(check)
        previous = self.verdicts
        self.verdicts = {t: self._combined(t) for t in self.targets}
        for target, new in self.verdicts.items():
            before = previous.get(target, State.UNKNOWN)
            if target in old_targets and new is not before:
                self.on_verdict(target, before, new, f"checks changed ({self.describe(target)})")
        return retired

    # -- verdicts -----------------------------------------------------------------------

    def _judging(self, target: str) -> list[Check]:
        """The checks that judge ``target``, in configuration order."""
        checks = self.checks
        return [checks[i] for i in self.assignment.checks_of(target) if i in checks]

    def _combined(self, target: str) -> State:
        judging = self._judging(target)
        if not judging:
            return State.UNKNOWN
        return worst_of(c.state(target) for c in judging)

    def _on_transition(
        self, check: Check, target: str, transition: Transition, result: ProbeResult
    ) -> None:
        if self.checks.get(check.id) is not check:
            return  # a retired check's last results
        if self.single:
            old = self.verdicts.get(target)
            if old is None:
                return
            self.verdicts[target] = transition.new
            self.on_verdict(
                target,
                old,
                transition.new,
                f"after {transition.count} consecutive "
                f"{'successes' if transition.new is State.UP else 'failures'}"
                + ("" if result.ok else f", last error: {result.error}"),
            )
            return
        log.info(
            "check %s: target %s %s -> %s after %d consecutive %s%s",
            check.id,
            target,
            transition.old,
            transition.new,
            transition.count,
            "successes" if transition.new is State.UP else "failures",
            "" if result.ok else f", last error: {result.error}",
            extra={"target": target, "check": check.id, "state": str(transition.new)},
        )
        old = self.verdicts.get(target)
        if old is None:
            return
        new = self._combined(target)
        if new is old:
            return
        self.verdicts[target] = new
        why = f"check {check.id} {transition.new}"
        if not result.ok and result.error:
            why += f": {result.error}"
        self.on_verdict(target, old, new, f"{why} ({self.describe(target)})")

    def describe(self, target: str) -> str:
        """The state of every check that judges ``target``, e.g. ``"web=down ping=up"``."""
        return " ".join(f"{c.id}={c.state(target)}" for c in self._judging(target))

    def status(self, target: str) -> list[tuple[str, Health, ProbeResult | None]]:
        """``(check id, health, last result)`` of every check that judges ``target``
        (status pages)."""
        return [
            (c.id, c.health.get(target, Health()), c.last.get(target))
            for c in self._judging(target)
        ]

    def copy_state(self) -> tuple[tuple[str, dict[str, Health], dict[str, ProbeResult]], ...]:
        """``(check id, target -> health, target -> last result)`` of every check, in
        configuration order (a check's dicts hold only the targets it judges): shallow
        copies of the dicts, cheap enough for a snapshot on the event loop (see
        :mod:`goavail.web.snapshot`)."""
        return tuple((c.id, dict(c.health), dict(c.last)) for c in self.checks.values())

    def cert_days_left(self) -> dict[tuple[str, str], float]:
        """``(check id, target) -> days`` until the certificate each https check last saw
        expires (fractional, negative once expired), for metrics."""
        days: dict[tuple[str, str], float] = {}
        for check in self.checks.values():
            probe = _http_probe(check.probe)
            if probe is not None:
                for target in probe.cert_expiry:
                    left = probe.cert_days_left(target)
                    if left is not None:
                        days[(check.id, target)] = left
        return days


def _http_probe(probe: Probe) -> HttpProbe | None:
    """``probe`` if it is an http(s) engine, else None."""
    from goavail.checks.http import HttpProbe  # light: httpx loads only when one starts

    return probe if isinstance(probe, HttpProbe) else None


async def _start_all(checks: list[Check]) -> None:
    started: list[Check] = []
    try:
        for check in checks:
            await check.probe.start()
            started.append(check)
    except BaseException:
        for check in started:
            with contextlib.suppress(Exception):
                await check.probe.close()
        raise


async def assess(
    sections: Sequence[CheckSection],
    targets: Sequence[str],
    assignment: Assignment | None = None,
) -> dict[str, tuple[State, list[tuple[str, ProbeResult]]]]:
    """Probe each target with each check that judges it ``max(fall, rise)`` times (the
    largest of the check's thresholds), ``interval`` apart (the checks run side by
    side), for ``goavail plan``.

    Args:
        sections: the resolved checks.
        targets: the target addresses.
        assignment: which checks judge which targets, with which thresholds
            (:mod:`goavail.judges`); None: every check judges every target.

    Returns:
        target -> (combined state, ``[(check id, result), ...]`` in probe order).

    Raises:
        ProbeSetupError: an engine cannot start.
    """
    if assignment is None:
        assignment = Assignment.every((s.id for s in sections), targets)
    results: dict[str, list[tuple[str, ProbeResult]]] = {t: [] for t in targets}
    states: dict[str, list[State]] = {t: [] for t in targets}

    async def one(section: CheckSection) -> None:
        judged = [t for t in assignment.targets.get(section.id, ()) if t in results]
        if not judged:
            return
        probe = build_check_probe(section)
        thresholds = {t: assignment.thresholds(section, t) for t in judged}
        health = dict.fromkeys(judged, Health())
        await probe.start()
        try:
            for n in range(max(max(pair) for pair in thresholds.values())):
                if n:
                    await asyncio.sleep(_number(section.interval, "interval", section))
                answers = await asyncio.gather(*(probe.probe(t) for t in judged))
                for target, result in zip(judged, answers, strict=True):
                    results[target].append((section.id, result))
                    fall, rise = thresholds[target]
                    health[target], _ = observe(health[target], result.ok, fall=fall, rise=rise)
        finally:
            await probe.close()
        for target in judged:
            states[target].append(health[target].state)

    try:
        async with asyncio.TaskGroup() as group:
            for section in sections:
                group.create_task(one(section))
    except BaseExceptionGroup as failed:  # the first failure, as a plain exception
        raise failed.exceptions[0] from None
    return {t: (worst_of(states[t]) if states[t] else State.UNKNOWN, results[t]) for t in targets}


__all__ = [
    "Check",
    "CheckSet",
    "Prepared",
    "ProbeSetupError",
    "VerdictCallback",
    "assess",
    "build_check_probe",
    "check_problems",
    "describe_check",
]
