"""Served-answer verification, the pure core: planned answers vs. what each server serves.

No I/O, no clock reads: every time is passed in (``time.monotonic()`` seconds in the
agent). :mod:`goavail.dns.verifier` is the I/O edge that asks the servers and feeds
the answers in.

Terms (docs/propagation.md):

* a **key** is ``(name, type)``: one managed name and one address family;
* the **planned answer** of a key is the set of the name's *managed* addresses
  (its configured ones) that the provider holds after a reconcile pass; addresses
  goavail does not manage are left out of the comparison on both sides, so a hand-made
  record never makes a server look behind;
* a **source** is one place that serves the answer: an authoritative server
  (``"IP:port"``), or :data:`API` for names the provider's API stands for (Cloudflare
  proxied records answer with Cloudflare's own addresses: such a record is served
  when the API lists it);
* a source **agrees** when its answer holds exactly the planned managed addresses;
* a key is **propagated** once every source agreed; its **propagation time** runs
  from the decision behind the change to the observation of the last source
  agreeing (the resolution is the query round's interval);
* a source is **lagging** when it has not agreed with some key for longer than the
  limit since the key's answer was planned (or since it was first seen disagreeing
  with an answer it had served).

:class:`Tracker` keeps this state; :func:`lag_changes` turns two lagging views into
the warnings and recoveries to report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from goavail.dns.model import RecordType

Key = tuple[str, RecordType]
"""``(name, record type)``: what one query asks."""

API = "api"
"""The source that stands for the provider's API (records verified by listing them)."""

PROPAGATION_BUCKETS: tuple[float, ...] = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
"""Upper bounds (seconds) of the propagation histogram's buckets: from a loopback
server's few tens of milliseconds to a secondary's refresh interval (minutes)."""


@dataclass(frozen=True, slots=True)
class Served:
    """One source's answer for one key.

    Attributes:
        addresses: the addresses it served (canonical text; empty: NODATA/NXDOMAIN).
        error: why there is no answer ("timeout", "SERVFAIL", ...), or None.
    """

    addresses: frozenset[str] = frozenset()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Expectation:
    """The planned answer of one key and where it must be served.

    Attributes:
        key: ``(name, type)``.
        planned: the managed addresses that must be served.
        managed: every managed (configured) address of the name in this family; the
            comparison looks only at these.
        sources: the sources to ask, in order.
    """

    key: Key
    planned: frozenset[str]
    managed: frozenset[str]
    sources: tuple[str, ...]


def agrees(expectation: Expectation, served: Served) -> bool:
    """Whether ``served`` is the planned answer (on the managed addresses only)."""
    return served.error is None and (served.addresses & expectation.managed) == expectation.planned


@dataclass(frozen=True, slots=True)
class Propagated:
    """A planned answer every source now serves.

    Attributes:
        key: ``(name, type)``.
        seconds: decision -> the last source seen agreeing, or None when no decision
            stood behind it (a resync's check; not a propagation time).
        last: the source seen agreeing last.
    """

    key: Key
    seconds: float | None
    last: str


@dataclass(frozen=True, slots=True)
class SourceState:
    """One source's state for one key (a read-only view).

    Attributes:
        served: its last answer, or None before it was asked.
        agrees: whether that answer is the planned one.
        behind_since: since when it has not agreed, or None while it agrees.
    """

    served: Served | None
    agrees: bool
    behind_since: float | None


@dataclass(frozen=True, slots=True)
class KeyState:
    """One key's verification state (a read-only view, for status and ``explain``).

    Attributes:
        key: ``(name, type)``.
        planned: the planned managed addresses.
        since: when this answer was planned (verification began).
        decided_at: the decision behind it, or None (nothing changed: a resync's check).
        propagated_at: when the last source was seen agreeing, or None while some
            source has not.
        sources: source -> its state, in the expectation's order.
    """

    key: Key
    planned: frozenset[str]
    since: float
    decided_at: float | None
    propagated_at: float | None
    sources: Mapping[str, SourceState]

    @property
    def behind(self) -> tuple[str, ...]:
        """The sources that do not serve the planned answer (yet)."""
        return tuple(s for s, state in self.sources.items() if not state.agrees)


@dataclass(frozen=True, slots=True)
class Lag:
    """A source lagging past the limit.

    Attributes:
        source: the server (``IP:port``) or :data:`API`.
        keys: the keys it is behind on, sorted.
        since: the earliest time it fell behind on one of them.
        detail: its last answer for the first key ("serves 192.0.2.1", "timeout").
    """

    source: str
    keys: tuple[Key, ...]
    since: float
    detail: str


@dataclass(slots=True)
class _Watch:
    expectation: Expectation
    since: float
    decided_at: float | None
    served: dict[str, Served] = field(default_factory=dict)
    agreed_at: dict[str, float] = field(default_factory=dict)
    behind_since: dict[str, float] = field(default_factory=dict)
    checked: set[str] = field(default_factory=set)
    propagated_at: float | None = None


class Tracker:
    """The verification state of one provider's names (pure; times are passed in).

    Usage: after every reconcile pass, :meth:`expect` the planned answers; ask each
    pair :meth:`due` returns and :meth:`observe` the answers; :meth:`take_propagated`
    yields the keys that became propagated, :meth:`lagging` the sources past the limit.

    Args:
        limit: seconds a source may stay behind before it is lagging.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._watches: dict[Key, _Watch] = {}
        self._done: list[Propagated] = []

    def expect(
        self,
        expectations: Iterable[Expectation],
        now: float,
        decided_at: Mapping[Key, float] | None = None,
    ) -> None:
        """The planned answers after a pass; every source is asked again (:meth:`due`).

        A key whose planned answer (or its sources) changed starts over: its
        propagation is measured from ``decided_at[key]`` (when a decision stands
        behind the change; else no propagation time is recorded) and its sources are
        behind since ``now`` (or since they fell behind on its previous answer, if they
        had not caught up with it). An unchanged key keeps its state (a resync re-checks
        it).
        Keys no longer expected are forgotten.

        Args:
            expectations: one per key (a later one of the same key wins).
            now: the time of the pass.
            decided_at: key -> the time of the earliest decision behind the change of
                its answer (``monotonic`` seconds).
        """
        decided = decided_at or {}
        watches: dict[Key, _Watch] = {}
        for expectation in expectations:
            old = self._watches.get(expectation.key)
            if old is not None and old.expectation == expectation:
                old.checked.clear()
                watches[expectation.key] = old
                continue
            when = decided.get(expectation.key)
            # a source already behind on the previous answer stays behind since then:
            # changes faster than the limit never hide a server that stopped updating
            earlier = {} if old is None else old.behind_since
            watches[expectation.key] = _Watch(
                expectation,
                since=now,
                decided_at=None if when is None else min(when, now),
                behind_since={s: min(earlier.get(s, now), now) for s in expectation.sources},
            )
        self._watches = watches

    def due(self) -> list[tuple[Key, str]]:
        """The ``(key, source)`` pairs to ask now: every pair not asked since the last
        :meth:`expect`, and every pair whose source does not agree yet; in key order."""
        pairs: list[tuple[Key, str]] = []
        for key in sorted(self._watches):
            watch = self._watches[key]
            for source in watch.expectation.sources:
                if source not in watch.checked or source in watch.behind_since:
                    pairs.append((key, source))
        return pairs

    def observe(self, key: Key, source: str, served: Served, now: float) -> None:
        """Record ``source``'s answer for ``key`` at ``now`` (unknown keys and sources
        are ignored: the plan moved on while the query was out)."""
        watch = self._watches.get(key)
        if watch is None or source not in watch.expectation.sources:
            return
        watch.served[source] = served
        watch.checked.add(source)
        if agrees(watch.expectation, served):
            watch.behind_since.pop(source, None)
            watch.agreed_at.setdefault(source, now)
            if not watch.behind_since and watch.propagated_at is None:
                last = max(watch.agreed_at, key=lambda s: watch.agreed_at[s])
                watch.propagated_at = watch.agreed_at[last]
                seconds = None
                if watch.decided_at is not None:
                    seconds = max(0.0, watch.propagated_at - watch.decided_at)
                self._done.append(Propagated(key, seconds, last))
        else:
            watch.behind_since.setdefault(source, now)
            watch.agreed_at.pop(source, None)

    def take_propagated(self) -> list[Propagated]:
        """The keys that became propagated since the last call, in the order they did."""
        done, self._done = self._done, []
        return done

    def settled(self) -> bool:
        """True when every source of every key was asked and agrees."""
        return not self.due()

    def lagging(self, now: float) -> dict[str, Lag]:
        """Source -> its :class:`Lag`, for every source behind on some key for longer
        than the limit at ``now``."""
        found: dict[str, tuple[list[Key], float, str]] = {}
        for key in sorted(self._watches):
            watch = self._watches[key]
            for source, since in watch.behind_since.items():
                if now - since <= self.limit:
                    continue
                keys, first, detail = found.get(source, ([], since, ""))
                keys.append(key)
                if not detail:
                    detail = describe_served(watch.served.get(source))
                found[source] = (keys, min(first, since), detail)
        return {
            source: Lag(source, tuple(keys), since, detail)
            for source, (keys, since, detail) in sorted(found.items())
        }

    def next_deadline(self) -> float | None:
        """The earliest time a source that is behind now becomes lagging, or None."""
        times = [
            since + self.limit
            for watch in self._watches.values()
            for since in watch.behind_since.values()
        ]
        return min(times, default=None)

    def state(self, name: str | None = None) -> list[KeyState]:
        """The state of every key (of ``name`` only, when given), in key order."""
        return [
            _key_state(self._watches[key])
            for key in sorted(self._watches)
            if name is None or key[0] == name
        ]


def _key_state(watch: _Watch) -> KeyState:
    expectation = watch.expectation
    return KeyState(
        key=expectation.key,
        planned=expectation.planned,
        since=watch.since,
        decided_at=watch.decided_at,
        propagated_at=watch.propagated_at,
        sources={
            source: SourceState(
                served=watch.served.get(source),
                agrees=source not in watch.behind_since,
                behind_since=watch.behind_since.get(source),
            )
            for source in expectation.sources
        },
    )


def describe_served(served: Served | None) -> str:
    """A short text of an answer: ``"serves 192.0.2.1, 192.0.2.2"``, ``"serves no
    address"``, ``"no answer: timeout"``, ``"not asked yet"``."""
    if served is None:
        return "not asked yet"
    if served.error is not None:
        return f"no answer: {served.error}"
    if not served.addresses:
        return "serves no address"
    return "serves " + ", ".join(sorted(served.addresses))


def lag_changes(before: Mapping[str, Lag], after: Mapping[str, Lag]) -> tuple[list[Lag], list[Lag]]:
    """``(started, recovered)``: the sources lagging in ``after`` but not in ``before``,
    and those lagging in ``before`` but no longer, each sorted by source."""
    started = [after[s] for s in sorted(after.keys() - before.keys())]
    recovered = [before[s] for s in sorted(before.keys() - after.keys())]
    return started, recovered


def round_delay(round_number: int, interval: float, limit: float) -> float:
    """Seconds before query round ``round_number`` (1: the first repeat) while a source
    is behind: ``interval`` growing by half each round, capped at half the limit (so a
    recovery is seen within half a limit) and 30 s, never below ``interval``.

    >>> [round(round_delay(n, 1.0, 60.0), 2) for n in (1, 2, 3, 10, 20)]
    [1.0, 1.5, 2.25, 30.0, 30.0]
    """
    cap = max(interval, min(30.0, limit / 2))
    return float(min(cap, interval * 1.5 ** max(0, round_number - 1)))


def expectations(
    records: Mapping[str, Iterable[str]],
    managed: Mapping[str, Sequence[str]],
    sources: Mapping[str, tuple[str, ...]],
) -> list[Expectation]:
    """The expectations of a pass's outcome (pure).

    Args:
        records: name -> the addresses the provider holds after the pass.
        managed: name -> its configured addresses (canonical text).
        sources: name -> the sources that serve it (names with none are left out).

    Returns:
        One :class:`Expectation` per name and family of its managed addresses.
    """
    result: list[Expectation] = []
    for name, addresses in managed.items():
        where = sources.get(name, ())
        if not where:
            continue
        held = set(records.get(name, ()))
        families: tuple[RecordType, ...] = ("A", "AAAA")
        for rtype in families:
            mine = frozenset(a for a in addresses if (":" in a) == (rtype == "AAAA"))
            if mine:
                result.append(Expectation((name, rtype), frozenset(mine & held), mine, where))
    return result


@dataclass(frozen=True, slots=True)
class PropagationView:
    """One provider's verification, copied for the HTTP side (status, metrics, health).

    Attributes:
        provider: its registry name.
        sources: the sources asked (servers in order, then :data:`API` if used).
        problem: why verification cannot run now (the NS set cannot be resolved), or None.
        keys: every key's state.
        lagging: source -> its lag, for the sources past the limit.
        limit: seconds (the configured limit).
        bucket_counts: propagations per :data:`PROPAGATION_BUCKETS` bucket (not
            cumulative), then the ones above the last bound.
        seconds_sum: the sum of all propagation times, seconds.
    """

    provider: str
    sources: tuple[str, ...]
    problem: str | None
    keys: tuple[KeyState, ...]
    lagging: Mapping[str, Lag]
    limit: float
    bucket_counts: tuple[int, ...]
    seconds_sum: float

    @property
    def count(self) -> int:
        """Propagations observed."""
        return sum(self.bucket_counts)


def bucket_index(seconds: float) -> int:
    """The index of the :data:`PROPAGATION_BUCKETS` bucket ``seconds`` falls in
    (``len(PROPAGATION_BUCKETS)`` above the last bound)."""
    for i, bound in enumerate(PROPAGATION_BUCKETS):
        if seconds <= bound:
            return i
    return len(PROPAGATION_BUCKETS)


__all__ = [
    "API",
    "PROPAGATION_BUCKETS",
    "Expectation",
    "Key",
    "KeyState",
    "Lag",
    "Propagated",
    "PropagationView",
    "Served",
    "SourceState",
    "Tracker",
    "agrees",
    "bucket_index",
    "describe_served",
    "expectations",
    "lag_changes",
    "round_delay",
]
