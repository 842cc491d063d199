"""The independent-loss model of false removals (pure: no I/O, no clock reads).

Every probe of every agent fails independently with probability ``p`` (random
packet loss, nothing else wrong). goavail's health state machine
(:mod:`goavail.health`) makes a target DOWN after ``fall`` consecutive failures and
UP again after ``rise`` consecutive successes. The questions an operator asks:
how often does a healthy target get removed from DNS, for a given ``fall`` (N),
with one agent or with ``k`` agents of which ``min_peers_agree + 1`` must agree?

Single agent. Seen from one agent a target alternates between UP periods and
DOWN periods (a renewal process). Counted in probes:

* an UP period lasts until the first run of ``fall`` failures:
  ``E[U] = (1 - p**fall) / ((1 - p) * p**fall)``;
* a DOWN period lasts until the first run of ``rise`` successes:
  ``E[D] = (1 - q**rise) / (p * q**rise)`` with ``q = 1 - p``.

Both are the mean waiting time for a run of ``r`` events of probability ``s``,
``(1 - s**r) / ((1 - s) * s**r)`` (W. Feller, *An Introduction to Probability Theory
and Its Applications*, vol. 1, 3rd ed., 1968, ch. XIII §7, eq. 7.7). By the
renewal-reward theorem the agent turns the target DOWN at the rate
``lam = 1 / (E[U] + E[D])`` per probe. The first-order version is
``lam ~ q * p**fall`` (a success followed by ``fall`` failures; the issue's
"``p**N`` per window"): it overestimates by the share of time spent DOWN.

In time (probe interval = 1), a DOWN verdict starts when the ``fall``-th failed
probe times out (``timeout`` after it was sent) and ends when the ``rise``-th
successful reply arrives (at once), so it lasts ``E[D] - timeout`` on average and
the agent holds a DOWN verdict a fraction ``pi_d = (E[D] - timeout) / (E[U] + E[D])``
of the time.

Cluster. With ``k`` agents and ``min_peers_agree = m`` a record is removed when
``m + 1`` agents hold a DOWN verdict at the same time (a decision needs this
agent's verdict and ``m`` peers'). Agents see independent loss and probe at
independent phases, so at the instant one agent turns DOWN each other agent is
DOWN with probability ``pi_d``. A removal starts whenever an agent turns DOWN
while exactly ``m`` of the other ``k - 1`` are DOWN:

    removals per probe interval = k * C(k-1, m) * lam * pi_d**m * (1 - pi_d)**(k-1-m)

For ``k = 3, m = 1``: ``6 * lam * pi_d * (1 - pi_d)`` (three pairs, either agent of
a pair may be the second to turn DOWN). The record comes back when ``m + 1``
agents are UP again. Gossip delay is ignored (it shifts a peer's verdict in time,
which changes nothing in a stationary process, as long as the delay is short
against a DOWN period, seconds here).

:func:`simulate` replays the same mechanism probe by probe with the real
:func:`goavail.health.observe` and random phases, as a check of the closed forms.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from goavail.health import Health, State, observe


def mean_run_wait(s: float, run: int) -> float:
    """Mean number of Bernoulli(``s``) trials until the first run of ``run`` successes.

    ``(1 - s**run) / ((1 - s) * s**run)`` (Feller, vol. 1, ch. XIII §7, eq. 7.7).
    Returns ``inf`` for ``s == 0``.

    Raises:
        ValueError: ``s`` outside [0, 1) or ``run < 1``.
    """
    if not 0.0 <= s < 1.0 or run < 1:
        raise ValueError(f"need 0 <= s < 1 and run >= 1, got s={s} run={run}")
    if s == 0.0:
        return math.inf
    return (1.0 - s**run) / ((1.0 - s) * s**run)


@dataclass(frozen=True, slots=True)
class AgentModel:
    """One agent's view of one healthy target under independent loss.

    Attributes:
        p: probability that one probe fails (0 < p < 1).
        fall: consecutive failures to turn DOWN (``failure_threshold``).
        rise: consecutive successes to turn UP (``rise_threshold``).
        timeout: the probe timeout in probe intervals (500 ms at 1 s: 0.5).
    """

    p: float
    fall: int
    rise: int
    timeout: float = 0.5

    @property
    def up_probes(self) -> float:
        """Mean length of an UP period, in probes."""
        return mean_run_wait(self.p, self.fall)

    @property
    def down_probes(self) -> float:
        """Mean length of a DOWN period, in probes."""
        return mean_run_wait(1.0 - self.p, self.rise)

    @property
    def down_rate(self) -> float:
        """DOWN transitions per probe (``lam``)."""
        return 1.0 / (self.up_probes + self.down_probes)

    @property
    def first_order_rate(self) -> float:
        """``(1 - p) * p**fall``: the simple "a success, then N failures" rate."""
        return (1.0 - self.p) * self.p**self.fall

    @property
    def down_seconds(self) -> float:
        """Mean time a DOWN verdict is held, in probe intervals (``E[D] - timeout``)."""
        return self.down_probes - self.timeout

    @property
    def down_share(self) -> float:
        """Share of time the agent holds a DOWN verdict (``pi_d``)."""
        return self.down_seconds / (self.up_probes + self.down_probes)


def removal_rate(model: AgentModel, agents: int, min_peers_agree: int) -> float:
    """Removals per target per probe interval (see the module docstring).

    ``agents = 1, min_peers_agree = 0`` is the single agent: every DOWN verdict
    removes the record.

    Raises:
        ValueError: ``min_peers_agree >= agents`` or ``agents < 1``.
    """
    k, m = agents, min_peers_agree
    if k < 1 or not 0 <= m < k:
        raise ValueError(f"need agents >= 1 and 0 <= min_peers_agree < agents, got {k}, {m}")
    lam, pd = model.down_rate, model.down_share
    return k * math.comb(k - 1, m) * lam * pd**m * (1.0 - pd) ** (k - 1 - m)


def expected_removals(
    model: AgentModel, agents: int, min_peers_agree: int, targets: int, probes: float
) -> float:
    """Expected removals over ``targets`` targets and ``probes`` probe intervals."""
    return removal_rate(model, agents, min_peers_agree) * targets * probes


def poisson_zero(mean: float) -> float:
    """Probability of seeing no event when ``mean`` are expected (Poisson)."""
    return math.exp(-mean)


def poisson_interval(mean: float, z: float = 1.96) -> tuple[float, float]:
    """Approximate two-sided 95 % range of a Poisson count with this mean.

    Uses ``mean +- z * sqrt(mean)`` (normal approximation), floored at 0; for small
    means read it together with :func:`poisson_zero`.
    """
    half = z * math.sqrt(mean)
    return max(0.0, mean - half), mean + half


@dataclass(frozen=True, slots=True)
class SimResult:
    """Totals of :func:`simulate` over every target and replicate.

    Attributes:
        target_windows: targets x replicates simulated.
        probes: probes per agent per target in the counted window.
        downs: DOWN transitions of all agents in the window.
        per_replicate: removals of each replicate (``targets`` targets each): the
            times the number of agents holding DOWN went from ``min_peers_agree``
            to ``min_peers_agree + 1`` in the window.
    """

    target_windows: int
    probes: int
    downs: int
    per_replicate: tuple[int, ...]

    @property
    def mean(self) -> float:
        """Mean removals per replicate."""
        return sum(self.per_replicate) / len(self.per_replicate)

    @property
    def stdev(self) -> float:
        """Sample standard deviation of the removals per replicate (0 for one replicate)."""
        n = len(self.per_replicate)
        if n < 2:
            return 0.0
        mean = self.mean
        return math.sqrt(sum((x - mean) ** 2 for x in self.per_replicate) / (n - 1))

    @property
    def zero_share(self) -> float:
        """Share of replicates without any removal."""
        return sum(1 for x in self.per_replicate if x == 0) / len(self.per_replicate)


def simulate(
    model: AgentModel,
    *,
    agents: int,
    min_peers_agree: int,
    targets: int,
    probes: int,
    settle: int,
    replicates: int,
    seed: int,
) -> SimResult:
    """Replay the experiment under the independent-loss assumption, probe by probe.

    Each agent probes each target once per interval (1 unit) at its own random
    phase; every probe fails with probability ``model.p``; a failure is known
    ``model.timeout`` intervals after the send, a success at once. Verdicts come from
    :func:`goavail.health.observe`. Every target starts UP at time 0 (loss starts
    then); DOWN transitions and removals are counted from ``settle`` to
    ``settle + probes`` intervals, as the live experiment does.

    Raises:
        ValueError: bad agent/quorum numbers (see :func:`removal_rate`).
    """
    if agents < 1 or not 0 <= min_peers_agree < agents:
        raise ValueError("need agents >= 1 and 0 <= min_peers_agree < agents")
    rng = random.Random(seed)
    start, end = float(settle), float(settle + probes)
    downs = 0
    per_replicate: list[int] = []
    fresh = Health(State.UP, successes=model.rise, failures=0)
    for _ in range(replicates):
        removals_here = 0
        for _ in range(targets):
            events: list[tuple[float, int, bool]] = []  # (time, agent, now down)
            for agent in range(agents):
                phase = rng.random()
                health = fresh
                for i in range(settle + probes + 1):
                    ok = rng.random() >= model.p
                    health, change = observe(health, ok, fall=model.fall, rise=model.rise)
                    if change is not None:
                        at = phase + i + (0.0 if ok else model.timeout)
                        events.append((at, agent, change.new is State.DOWN))
            events.sort()
            down = 0
            for at, _agent, now_down in events:
                if now_down:
                    down += 1
                    if start <= at < end:
                        downs += 1
                        if down == min_peers_agree + 1:
                            removals_here += 1
                else:
                    down -= 1
        per_replicate.append(removals_here)
    return SimResult(targets * replicates, probes, downs, tuple(per_replicate))


def worked_example(
    p: float, falls: range, *, timeout: float = 0.5, targets: int = 1000, seconds: float = 300.0
) -> list[dict[str, float]]:
    """The table of BENCHMARKS.md: per N, rates and expected removals (interval 1 s,
    ``rise = fall``) for one agent and for 3 agents with ``min_peers_agree`` 1 and 2.

    Each row: ``fall``, ``up_s``, ``down_s`` (mean UP/DOWN period, s),
    ``first_order`` and ``lam`` (DOWN verdicts per target-second), ``pi_d``, ``single``,
    ``q1``, ``q2`` (expected removals over ``targets`` x ``seconds``), and
    ``single_day``, ``q1_day``, ``q2_day`` (per single target per day).
    """
    rows: list[dict[str, float]] = []
    for n in falls:
        m = AgentModel(p, n, n, timeout)
        single, q1, q2 = (removal_rate(m, k, a) for k, a in ((1, 0), (3, 1), (3, 2)))
        rows.append(
            {
                "fall": n,
                "up_s": m.up_probes,
                "down_s": m.down_seconds,
                "first_order": m.first_order_rate,
                "lam": m.down_rate,
                "pi_d": m.down_share,
                "single": single * targets * seconds,
                "q1": q1 * targets * seconds,
                "q2": q2 * targets * seconds,
                "single_day": single * 86400,
                "q1_day": q1 * 86400,
                "q2_day": q2 * 86400,
            }
        )
    return rows
