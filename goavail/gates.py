"""Gates on a recovered target: flap damping and gated failback (pure: no I/O, no clock
reads; every time is an argument, ``time.monotonic()`` seconds where the agent calls).

The checks' verdict of a target (:mod:`goavail.health`) goes through these gates before
the agent announces it as its own verdict (:class:`goavail.decision.DecisionStage`, and in
cluster mode its peers): a gate never delays a withdrawal, it only keeps a target that is
up again announced ``down`` for a while. So in a cluster each agent damps what it sees,
and quorum still decides; fail-open and the brake work on the result as on any verdict.

**Flap damping** (RFC 2439, "BGP Route Flap Damping", Villamizar, Chandra, Govindan,
1998), per target. The target's *figure of merit* (here: its *penalty*) grows by a fixed
amount at every flap and decays exponentially with a configurable half-life:

    p(t) = p(t0) * 2 ** (-(t - t0) / half_life)

A flap is a DOWN transition of the checks' verdict. When a flap lifts the penalty above
the *suppress* (RFC 2439: "cutoff") threshold, the target is suppressed: it stays
announced ``down`` until its penalty has decayed to the *reuse* threshold or below
(RFC 2439's "reuse threshold"); flaps while it is suppressed add to the penalty as
well. The penalty never exceeds a *ceiling* that bounds the longest suppression to the
*maximum hold-down time* (RFC 2439's "maximum hold down time"; the
ceiling is ``reuse * 2 ** (max_hold_down / half_life)``: the penalty that decays to the
reuse threshold in exactly that time). RFC 2439 keeps a history until a "decay memory
limit"; here a penalty that decays below half the reuse threshold is forgotten (it can
no longer cause a suppression by itself with sane settings; the common router practice
of resetting the penalty at half the reuse limit). RFC 2439 allows separate half-lives
while reachable and unreachable; goavail uses one.

The arithmetic is checked at the scale routers use for RFC 2439 damping (Cisco IOS's
defaults: 1000 per flap, half-life 15 minutes, suppress 2000, reuse 750, maximum
suppress time 60 minutes): with ``penalty`` 1000, ``half_life`` 15 minutes,
``suppress`` 2000, ``reuse`` 750 and a maximum hold-down of 60 minutes, the ceiling is
``750 * 2**4 = 12000``; three flaps at once give 3000 (suppressed), which decays to 750
after two half-lives (30 minutes).

**Gated failback**, per target (its pools' and names' ``failback``, the strictest,
see :func:`strictest`): once a target was down, its recovery is re-announced

* ``auto``: at once (today's behaviour);
* ``after`` *d*: once its checks have said ``up`` for *d* seconds without a new DOWN;
* ``manual``: only when an operator releases it (:meth:`Gates.release`; a release
  given while the target is still down lets it back as soon as it is up).

A new DOWN transition closes the gate again and cancels an earlier release. A target
that was never down (``unknown`` -> ``up`` at start-up or when a reload adds it) is
announced at once: a restart starts every target unknown and forgets the gates.

:class:`Gates` holds the per-target state; :meth:`Gates.view` is the small query a
status page or ``goavail explain`` reads (penalty now, suppressed, reuse time, gate).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from goavail.health import State

# -- flap damping (RFC 2439) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DampingSettings:
    """The damping parameters of RFC 2439 (names after goavail's ``[Damping]``).

    Attributes:
        penalty: added to a target's penalty at each DOWN transition (> 0).
        half_life: seconds in which a penalty halves (> 0).
        suppress: a flap that lifts the penalty above this suppresses the target
            (RFC 2439's cutoff threshold; > ``reuse``).
        reuse: a suppressed target is announced up again (when its checks say so)
            once its penalty has decayed to this or below (> 0).
        max_suppress: the longest a target stays suppressed after its last flap,
            seconds (RFC 2439's maximum hold-down time; bounds the penalty by
            :attr:`ceiling`).

    Raises:
        ValueError: a parameter out of range (the config layer reports these with
            their key paths first).
    """

    penalty: float = 1000.0
    half_life: float = 300.0
    suppress: float = 3000.0
    reuse: float = 750.0
    max_suppress: float = 1800.0

    def __post_init__(self) -> None:
        if not (self.penalty > 0 and self.half_life > 0 and self.reuse > 0):
            raise ValueError("penalty, half_life and reuse must be > 0")
        if self.suppress <= self.reuse:
            raise ValueError("suppress must be above reuse")
        if self.max_suppress <= 0:
            raise ValueError("max_suppress must be > 0")

    @property
    def ceiling(self) -> float:
        """The largest penalty: ``reuse * 2 ** (max_suppress / half_life)`` (RFC 2439's
        maximum hold-down time), which decays to ``reuse`` in exactly ``max_suppress`` seconds.

        >>> DampingSettings(1000, 900, 2000, 750, 3600).ceiling
        12000.0
        """
        return self.reuse * math.pow(2.0, self.max_suppress / self.half_life)


def decay(penalty: float, elapsed: float, half_life: float) -> float:
    """``penalty`` after ``elapsed`` seconds: ``penalty * 2 ** (-elapsed / half_life)``
    (RFC 2439). A negative ``elapsed`` (a clock read out of order) decays nothing.

    >>> decay(3000, 900, 900)
    1500.0
    """
    if elapsed <= 0 or penalty == 0:
        return penalty
    return penalty * math.pow(2.0, -elapsed / half_life)


def time_to_decay(penalty: float, limit: float, half_life: float) -> float:
    """Seconds until ``penalty`` has decayed to ``limit``: ``half_life * log2(p / limit)``
    (0 when it already is at or below it).

    >>> time_to_decay(3000, 750, 900)
    1800.0
    """
    if penalty <= limit:
        return 0.0
    return half_life * math.log2(penalty / limit)


@dataclass(frozen=True, slots=True)
class Damped:
    """One target's damping state.

    Attributes:
        penalty: the penalty at time ``at`` (0: no history).
        at: when ``penalty`` was last computed (monotonic seconds).
        suppressed: whether the target is suppressed (announced down while up).
    """

    penalty: float = 0.0
    at: float = 0.0
    suppressed: bool = False

    def penalty_at(self, now: float, settings: DampingSettings) -> float:
        """The penalty at ``now`` (decayed; not stored)."""
        return decay(self.penalty, now - self.at, settings.half_life)


def flap(damped: Damped, now: float, settings: DampingSettings) -> Damped:
    """A DOWN transition at ``now``: decay the penalty to ``now``, add ``penalty`` (at
    most up to the ceiling) and suppress when the result is above ``suppress``
    (RFC 2439; a suppressed target stays suppressed).

    >>> s = DampingSettings(1000, 900, 2000, 750, 3600)
    >>> flap(flap(flap(Damped(), 0, s), 0, s), 0, s)
    Damped(penalty=3000.0, at=0, suppressed=True)
    """
    penalty = min(damped.penalty_at(now, settings) + settings.penalty, settings.ceiling)
    return Damped(penalty, now, damped.suppressed or penalty > settings.suppress)


def settle(damped: Damped, now: float, settings: DampingSettings) -> Damped:
    """Decay to ``now``: a suppressed target whose penalty is at or below ``reuse`` is
    no longer suppressed; a penalty below half of ``reuse`` is forgotten (0)."""
    if damped.penalty == 0:
        return damped
    penalty = damped.penalty_at(now, settings)
    suppressed = damped.suppressed and penalty > settings.reuse
    if not suppressed and penalty < settings.reuse / 2:
        return Damped()
    return Damped(penalty, now, suppressed)


def reuse_at(damped: Damped, settings: DampingSettings) -> float | None:
    """When a suppressed target's penalty decays to ``reuse`` (monotonic seconds), or
    None when it is not suppressed."""
    if not damped.suppressed:
        return None
    return damped.at + time_to_decay(damped.penalty, settings.reuse, settings.half_life)


# -- gated failback ----------------------------------------------------------------------


class FailbackMode(enum.Enum):
    """How a recovered target comes back: at once, after a time up, or when released."""

    AUTO = "auto"
    AFTER = "after"
    MANUAL = "manual"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Failback:
    """One ``failback`` setting: ``mode`` and, for ``after``, the ``delay`` in seconds.

    >>> str(Failback(FailbackMode.AFTER, 300))
    'after 5m'
    """

    mode: FailbackMode = FailbackMode.AUTO
    delay: float = 0.0

    def __str__(self) -> str:
        if self.mode is not FailbackMode.AFTER:
            return str(self.mode.value)
        seconds = self.delay
        for unit, size in (("h", 3600), ("m", 60)):
            if seconds >= size and seconds % size == 0:
                return f"after {seconds / size:g}{unit}"
        return f"after {seconds:g}s"


AUTO = Failback()


def strictest(settings: Iterable[Failback]) -> Failback:
    """The failback of a target whose pools or names set several: ``manual`` over any
    ``after``, the longest ``after`` over a shorter one, ``after`` over ``auto``
    (``auto`` when none is given). A target shared by a careful pool and a careless one
    comes back only when both would let it.

    >>> strictest([Failback(FailbackMode.AFTER, 60), AUTO, Failback(FailbackMode.AFTER, 300)])
    Failback(mode=<FailbackMode.AFTER: 'after'>, delay=300)
    """
    order = {FailbackMode.AUTO: 0, FailbackMode.AFTER: 1, FailbackMode.MANUAL: 2}
    return max(settings, key=lambda f: (order[f.mode], f.delay), default=AUTO)


class Gate(enum.Enum):
    """A target's failback gate: open, waiting for time, or waiting for an operator."""

    OPEN = "open"
    WAITING = "waiting"
    OPERATOR = "operator"

    def __str__(self) -> str:
        return self.value


# -- both, per target --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetGates:
    """One target's gate state.

    Attributes:
        raw: the checks' verdict (before the gates).
        damped: its damping state.
        armed: the failback gate is closed: the target went down and has not been
            announced up since.
        up_since: when ``raw`` last became UP (monotonic seconds), or None.
        released: an operator released the closed gate (by whom: ``released_by``).
    """

    raw: State = State.UNKNOWN
    damped: Damped = field(default_factory=Damped)
    armed: bool = False
    up_since: float | None = None
    released: bool = False
    released_by: str = ""


@dataclass(frozen=True, slots=True)
class GateView:
    """What the gates say of one target now (the query for the page, the API and
    ``goavail explain``).

    Attributes:
        penalty: the damping penalty now (0 without damping or history).
        suppressed: whether damping holds the target down.
        reuse_at: when the suppression ends (monotonic seconds), None if not suppressed.
        failback: the target's failback setting (text: ``auto``, ``after 5m``, ``manual``).
        gate: the failback gate now.
        until: when a ``waiting`` gate opens (monotonic seconds), else None.
        released_by: who released a ``manual`` gate that is still closed for another
            reason (damping), else "".
        published: the verdict the agent announces (the checks' verdict through the gates).
    """

    penalty: float
    suppressed: bool
    reuse_at: float | None
    failback: str
    gate: Gate
    until: float | None
    released_by: str
    published: State


@dataclass(frozen=True, slots=True)
class GateEvent:
    """Something a gate did, for logs, the audit log and the event bus.

    ``kind``: ``suppressed`` (damping took the target out: ``penalty``, ``at``:
    the reuse time), ``reused`` (its penalty decayed to the reuse limit),
    ``waiting`` (the target is up again, held by its failback gate: ``at`` is the
    opening time for ``after``, None for ``manual``), ``released`` (an operator
    released it: ``by``), ``opened`` (an ``after`` gate's time ran out).
    """

    target: str
    kind: str
    penalty: float = 0.0
    at: float | None = None
    by: str = ""


class Gates:
    """Every target's gates, kept between the checks and the decision stage.

    Args:
        damping: the damping settings, or None (damping off: no penalty is kept).
        failback: target -> its failback setting; targets absent follow ``default``.
        default: the failback of the other targets (the top-level ``failback``).

    Each method taking ``now`` returns the :class:`GateEvent` it caused; the agent
    reads :meth:`published` before and after to know whether its announced verdict
    changed, and schedules a wake-up at :meth:`deadline`.
    """

    def __init__(
        self,
        damping: DampingSettings | None = None,
        failback: Mapping[str, Failback] | None = None,
        default: Failback = AUTO,
    ) -> None:
        self.damping = damping
        self.failback: dict[str, Failback] = dict(failback or {})
        self.default = default
        self.state: dict[str, TargetGates] = {}

    def configure(
        self,
        damping: DampingSettings | None,
        failback: Mapping[str, Failback],
        now: float,
        default: Failback = AUTO,
    ) -> list[GateEvent]:
        """A reload: new settings; the targets' state is kept (a suppressed target
        stays so under damping still on; turning damping off reuses every suppressed
        target). Returns the events that caused."""
        self.damping = damping
        self.failback = dict(failback)
        self.default = default
        events: list[GateEvent] = []
        for target in list(self.state):
            events += self.tick(target, now)
        return events

    def failback_of(self, target: str) -> Failback:
        """``target``'s failback setting."""
        return self.failback.get(target, self.default)

    def forget(self, target: str) -> None:
        """Drop a target removed from the configuration."""
        self.state.pop(target, None)

    def published(self, target: str, now: float) -> State:
        """The verdict to announce for ``target``: the checks' verdict, except ``down``
        while it is up but suppressed or held by its failback gate."""
        gs = self.state.get(target)
        if gs is None:
            return State.UNKNOWN
        if gs.raw is not State.UP:
            return gs.raw
        if gs.damped.suppressed or self._gate(gs, target, now)[0] is not Gate.OPEN:
            return State.DOWN
        return State.UP

    def _gate(self, gs: TargetGates, target: str, now: float) -> tuple[Gate, float | None]:
        if not gs.armed or gs.released:
            return Gate.OPEN, None
        setting = self.failback_of(target)
        if setting.mode is FailbackMode.MANUAL:
            return Gate.OPERATOR, None
        if setting.mode is FailbackMode.AUTO:
            return Gate.OPEN, None
        if gs.raw is not State.UP or gs.up_since is None:
            return Gate.WAITING, None
        until = gs.up_since + setting.delay
        return (Gate.OPEN, None) if now >= until else (Gate.WAITING, until)

    def observe(self, target: str, raw: State, now: float) -> list[GateEvent]:
        """The checks' verdict of ``target`` changed to ``raw`` at ``now``."""
        gs = self.state.get(target, TargetGates())
        events: list[GateEvent] = []
        damped = gs.damped
        if self.damping is not None:
            damped = settle(damped, now, self.damping)
        if raw is State.DOWN:
            if self.damping is not None:
                was = damped.suppressed
                damped = flap(damped, now, self.damping)
                if damped.suppressed and not was:
                    events.append(
                        GateEvent(
                            target, "suppressed", damped.penalty, reuse_at(damped, self.damping)
                        )
                    )
            gs = TargetGates(State.DOWN, damped, armed=True)
        elif raw is State.UP:
            gs = replace(gs, raw=State.UP, damped=damped, up_since=now)
        else:
            gs = replace(gs, raw=raw, damped=damped, up_since=None)
        self.state[target] = gs
        return events + self._settle(target, now, announce_wait=raw is State.UP)

    def tick(self, target: str, now: float) -> list[GateEvent]:
        """Time passed (a deadline was reached, or settings changed): apply it."""
        gs = self.state.get(target)
        if gs is None:
            return []
        return self._settle(target, now, announce_wait=False)

    def _settle(self, target: str, now: float, *, announce_wait: bool) -> list[GateEvent]:
        gs = self.state[target]
        events: list[GateEvent] = []
        damped = gs.damped
        if self.damping is None:
            if damped.suppressed or damped.penalty:
                if damped.suppressed:
                    events.append(GateEvent(target, "reused"))
                damped = Damped()
        else:
            before = damped.suppressed
            damped = settle(damped, now, self.damping)
            if before and not damped.suppressed:
                events.append(GateEvent(target, "reused", damped.penalty_at(now, self.damping)))
        gs = replace(gs, damped=damped)
        gate, until = self._gate(gs, target, now)
        if gs.raw is State.UP and gs.armed:
            if gate is Gate.OPEN and not damped.suppressed:
                if not gs.released and self.failback_of(target).mode is FailbackMode.AFTER:
                    events.append(GateEvent(target, "opened"))
                gs = replace(gs, armed=False, released=False, released_by="")
            elif announce_wait and gate is not Gate.OPEN:
                events.append(GateEvent(target, "waiting", at=until))
        self.state[target] = gs
        return events

    def release(self, target: str, by: str, now: float) -> list[GateEvent] | None:
        """An operator (``by``: "api", "peer node-b", ...) releases ``target``'s closed
        failback gate. Returns the events, or None when its gate is not closed (nothing
        to release: never down, or already announced up)."""
        gs = self.state.get(target)
        if gs is None or not gs.armed or gs.released:
            return None
        self.state[target] = replace(gs, released=True, released_by=by)
        return [
            GateEvent(target, "released", by=by),
            *self._settle(target, now, announce_wait=False),
        ]

    def releasable(self, target: str) -> bool:
        """Whether ``target``'s failback gate is closed and not released yet."""
        gs = self.state.get(target)
        return gs is not None and gs.armed and not gs.released

    def deadline(self, target: str) -> float | None:
        """The next time ``target``'s announced verdict may change by itself (the end
        of its suppression or of its ``after`` wait), or None."""
        gs = self.state.get(target)
        if gs is None:
            return None
        times: list[float] = []
        if self.damping is not None:
            end = reuse_at(gs.damped, self.damping)
            if end is not None:
                times.append(end)
        if gs.armed and not gs.released and gs.raw is State.UP and gs.up_since is not None:
            setting = self.failback_of(target)
            if setting.mode is FailbackMode.AFTER:
                times.append(gs.up_since + setting.delay)
        return min(times, default=None)

    def view(self, target: str, now: float) -> GateView:
        """The gates of ``target`` at ``now`` (pure query; nothing is stored)."""
        gs = self.state.get(target, TargetGates())
        damped = gs.damped
        penalty = 0.0
        suppressed = False
        end = None
        if self.damping is not None:
            damped = settle(damped, now, self.damping)
            penalty = damped.penalty
            suppressed = damped.suppressed
            end = reuse_at(damped, self.damping)
        gate, until = self._gate(gs, target, now)
        if gs.raw is not State.UP and gate is Gate.WAITING:
            until = None  # the wait starts when the checks say up again
        return GateView(
            penalty=penalty,
            suppressed=suppressed,
            reuse_at=end,
            failback=str(self.failback_of(target)),
            gate=gate,
            until=until,
            released_by=gs.released_by if gs.released else "",
            published=self.published(target, now),
        )

    def busy(self) -> list[str]:
        """The targets with a damping history or a closed failback gate (the only ones
        whose :meth:`view` differs from the default; few in a calm fleet)."""
        return [t for t, gs in self.state.items() if gs.damped.penalty or gs.armed]

    def counts(self, now: float) -> tuple[int, int]:
        """``(suppressed, awaiting failback)``: targets damping holds down, and up targets
        whose failback gate holds them (for ``/metrics``)."""
        suppressed = waiting = 0
        for target, gs in self.state.items():
            if gs.damped.suppressed:
                suppressed += 1
            elif (
                gs.raw is State.UP and gs.armed and self._gate(gs, target, now)[0] is not Gate.OPEN
            ):
                waiting += 1
        return suppressed, waiting
