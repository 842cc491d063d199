"""Which targets and names a page of the status shows, in which order (pure: no I/O, no
clock reads; times come from the caller's snapshot).

The status page and ``/api/status`` list a fleet of any size (the issue's yardstick:
10,000 targets in 5,000 names) a page at a time, problems first:

* **Order** (``order=status``): targets that are down (this agent sees them down, or DNS
  withdraws them) first, by address; then the targets that *changed* recently (their
  last transition within :data:`RECENT_SECONDS`), newest first; then the rest, by
  address (numeric: ``192.0.2.9`` before ``192.0.2.10``). Names likewise: names whose
  published answer differs from their primary pool (:class:`Answer`: a backup serving,
  fail-open, the brake holding) or that hold a down target first, then names with a
  recent change (newest first), then the rest; ties by name. ``order=config`` keeps
  configuration order (targets) and name order (names), as ``/api/status`` always had.
* **Filters** (:class:`Query`): ``name`` (a substring of one of the target's names, or of
  its address; of the name for names), ``pool`` (a configured pool), ``state``
  (:data:`STATES`).
* **Pages**: ``page`` (targets), ``names_page`` (names), ``per_page`` (both; default
  :data:`DEFAULT_PER_PAGE`, at most :data:`MAX_PER_PAGE`; ``/api/status`` lists
  everything unless asked for pages).

Costs, per request: linear in targets plus name memberships for the facts, and one sort,
O(n log n); only the rows of the page shown are built in full (see
:func:`goavail.web.status.status_document`). What depends on the configuration alone
(each target's pools and names, the address order) is an :class:`Index`, built once
per configuration (:class:`IndexCache`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple
from urllib.parse import urlencode

from goavail.dns.model import Record
from goavail.dns.plan import NameSpec

STATES = ("up", "down", "unknown", "overridden", "changed", "held", "differs")
"""The ``state`` filter's values. ``up``/``down``/``unknown``: this agent's health of the
target (a name: one of its targets); ``overridden``: under a maintenance override;
``changed``: last transition within :data:`RECENT_SECONDS`; ``held``: the brake keeps it
in DNS; ``differs``: (published under) a name whose answer differs from its primary."""
STATE_BITS = {state: 1 << i for i, state in enumerate(STATES)}
"""One bit per :data:`STATES` value: the states a pool's or a name's targets pass are
an ``int`` of these (cheaper than a set per pool and name)."""
ORDERS = ("status", "config")
"""The ``order`` parameter's values (see the module docstring)."""
DEFAULT_PER_PAGE = 100
"""Rows per page of the status page when ``per_page`` is not given."""
MAX_PER_PAGE = 1000
"""The largest ``per_page`` honoured; a larger one is cut to it (as GitHub's API does)."""
RECENT_SECONDS = 3600.0
"""A target whose last transition is at most this old (seconds) has *changed* recently.
In the first hour after start every target's first verdict counts as a change."""
MAX_FILTER = 200
"""Longest ``name`` filter accepted, characters."""

_RANK_PROBLEM, _RANK_CHANGED, _RANK_REST = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Query:
    """What one request asks to see.

    Attributes:
        name: substring filter ("" = none), lower case.
        pool: a configured pool's name ("" = none).
        state: one of :data:`STATES` ("" = none).
        order: one of :data:`ORDERS`.
        page: the page of targets shown, from 1.
        names_page: the page of names shown, from 1.
        per_page: rows per page (both lists); None: everything on one page.
    """

    name: str = ""
    pool: str = ""
    state: str = ""
    order: str = "status"
    page: int = 1
    names_page: int = 1
    per_page: int | None = DEFAULT_PER_PAGE

    @property
    def filtered(self) -> bool:
        """Whether any filter is set."""
        return bool(self.name or self.pool or self.state)

    def params(self, defaults: Query, **changes: int | str) -> str:
        """The query string (``a=1&b=2``, no ``?``) of this query with ``changes``,
        leaving out what equals ``defaults``: the links of the page keep the filters."""
        wanted = replace(self, **changes)  # type: ignore[arg-type]
        pairs = [
            (key, str(getattr(wanted, key)))
            for key in ("name", "pool", "state", "order", "per_page", "page", "names_page")
            if getattr(wanted, key) != getattr(defaults, key) and getattr(wanted, key) is not None
        ]
        return urlencode(pairs)

    def as_dict(self) -> dict[str, str | int | None]:
        """The query as the ``listing.query`` of the status document."""
        return {
            "name": self.name,
            "pool": self.pool,
            "state": self.state,
            "order": self.order,
            "page": self.page,
            "names_page": self.names_page,
            "per_page": self.per_page,
        }


PAGE_DEFAULTS = Query()
"""The status page's defaults: problems first, :data:`DEFAULT_PER_PAGE` rows."""
API_DEFAULTS = Query(order="config", per_page=None)
"""``/api/status``'s defaults: every target in configuration order, as before pages."""


def _positive(key: str, text: str, problems: list[str]) -> int | None:
    try:
        value = int(text)
    except ValueError:
        problems.append(f"{key}: {text[:40]!r} is not a whole number")
        return None
    if value < 1:
        problems.append(f"{key}: must be at least 1, got {value}")
        return None
    return value


def parse_query(
    params: Mapping[str, str], pools: Collection[str], defaults: Query
) -> tuple[Query, list[str]]:
    """Read a request's query parameters (unknown ones are ignored).

    Args:
        params: the query parameters (the last value of a repeated one).
        pools: the configured pools' names (``pool`` must be one of them).
        defaults: what an absent parameter means (:data:`PAGE_DEFAULTS`,
            :data:`API_DEFAULTS`).

    Returns:
        The query, with :data:`defaults`' value for every parameter that is not
        acceptable, and one problem line per such parameter (``"state: ..."``).
        ``per_page`` above :data:`MAX_PER_PAGE` is cut to it, not a problem.
    """
    problems: list[str] = []
    changes: dict[str, int | str] = {}
    name = params.get("name", "").strip().lower()
    if len(name) > MAX_FILTER:
        problems.append(f"name: at most {MAX_FILTER} characters")
    elif name:
        changes["name"] = name
    pool = params.get("pool", "").strip()
    if pool and pool not in pools:
        problems.append(f"pool: {pool[:60]!r} is not a configured pool")
    elif pool:
        changes["pool"] = pool
    state = params.get("state", "").strip().lower()
    if state and state not in STATES:
        problems.append(f"state: {state[:40]!r} is not one of {', '.join(STATES)}")
    elif state:
        changes["state"] = state
    order = params.get("order", "").strip().lower()
    if order and order not in ORDERS:
        problems.append(f"order: {order[:40]!r} is not one of {', '.join(ORDERS)}")
    elif order:
        changes["order"] = order
    for key in ("page", "names_page", "per_page"):
        text = params.get(key, "").strip()
        if text:
            value = _positive(key, text, problems)
            if value is not None:
                changes[key] = min(value, MAX_PER_PAGE) if key == "per_page" else value
    query = replace(defaults, **changes)  # type: ignore[arg-type]
    if (
        "per_page" not in changes
        and query.per_page is None
        and ("page" in changes or "names_page" in changes)
    ):
        query = replace(query, per_page=DEFAULT_PER_PAGE)  # a page asked for has a size
    return query, problems


# --------------------------------------------------------------------------- the index


def address_key(address: str) -> tuple[int, int]:
    """The numeric order of an address: IPv4 before IPv6, then by value. Text that is
    not an address sorts first (``(0, 0)``), which configuration validation excludes."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (0, 0)
    return (ip.version, int(ip))


@dataclass(frozen=True, slots=True)
class Index:
    """What the listing needs of the configuration, built once per configuration.

    Attributes:
        specs: the managed names with their pools, sorted by name.
        pools: pool name -> its addresses, in configuration order.
        targets: every target, in configuration order.
        pools_of: target -> the pools holding it, in configuration order.
        names_of: target -> the names publishing it, sorted.
        rank: target -> its position in address order (numeric).
        groups: each distinct pool of the names (by its name; a pool without a name
            by its name's name and place) -> its addresses as a set.
        groups_of: name -> the keys of its pools in :attr:`groups`, priority order.
    """

    specs: tuple[NameSpec, ...]
    pools: dict[str, tuple[str, ...]]
    targets: tuple[str, ...]
    pools_of: dict[str, tuple[str, ...]]
    names_of: dict[str, tuple[str, ...]]
    rank: dict[str, int]
    groups: dict[str, frozenset[str]]
    groups_of: dict[str, tuple[str, ...]]


def build_index(
    specs: Sequence[NameSpec], pools: Mapping[str, Sequence[str]], targets: Sequence[str]
) -> Index:
    """The :class:`Index` of a configuration (O(targets log targets + memberships)).

    Args:
        specs: the managed names (:attr:`goavail.pools.Publication.specs`).
        pools: pool name -> addresses (:attr:`goavail.pools.Publication.pools`).
        targets: the configured targets, in configuration order.
    """
    pools_of: dict[str, list[str]] = {}
    for pool, addresses in pools.items():
        for address in dict.fromkeys(addresses):
            pools_of.setdefault(address, []).append(pool)
    names_of: dict[str, list[str]] = {}
    ordered = tuple(sorted(specs, key=lambda s: s.name))
    groups: dict[str, frozenset[str]] = {}
    groups_of: dict[str, tuple[str, ...]] = {}
    for spec in ordered:
        for address in spec.addresses:
            names_of.setdefault(address, []).append(spec.name)
        keys = []
        for i, addresses in enumerate(spec.pools):
            key = spec.pool_names[i] if i < len(spec.pool_names) else f"{spec.name}#{i}"
            if key not in groups:
                groups[key] = frozenset(addresses)
            keys.append(key)
        groups_of[spec.name] = tuple(keys)
    by_address = sorted(targets, key=address_key)
    return Index(
        specs=ordered,
        pools={name: tuple(addresses) for name, addresses in pools.items()},
        targets=tuple(targets),
        pools_of={a: tuple(p) for a, p in pools_of.items()},
        names_of={a: tuple(n) for a, n in names_of.items()},
        rank={address: i for i, address in enumerate(by_address)},
        groups=groups,
        groups_of=groups_of,
    )


class IndexCache:
    """One :class:`Index`, rebuilt when the configuration's objects change (a reload
    makes new ones): the key is the identity of ``specs``, ``pools`` and ``targets``,
    which the cache keeps alive so an identity cannot be reused while cached."""

    def __init__(self) -> None:
        self._key: tuple[object, ...] = ()
        self._index: Index | None = None

    def get(
        self, specs: Sequence[NameSpec], pools: Mapping[str, Sequence[str]], targets: Sequence[str]
    ) -> Index:
        """The index of these values (built on the first call for them)."""
        key = (specs, pools, targets)
        if (
            self._index is None
            or len(key) != len(self._key)
            or any(a is not b for a, b in zip(key, self._key, strict=True))
        ):
            self._index = build_index(specs, pools, targets)
            self._key = key
        return self._index


# --------------------------------------------------------------------------- facts


class TargetFact(NamedTuple):
    """What ordering and filtering need of one target (cheap: no text is formatted).

    Attributes:
        address: the target.
        state: this agent's health (``"up"``, ``"down"``, ``"unknown"``).
        effective: what DNS should reflect (the decision, or the override in force).
        overridden: a maintenance override is in force.
        since: its last transition (Unix seconds).
        held: the brake keeps it in DNS.
    """

    address: str
    state: str
    effective: str
    overridden: bool
    since: float
    held: bool

    @property
    def down(self) -> bool:
        """Seen down by this agent, or withdrawn (decided down, drained)."""
        return self.state == "down" or self.effective == "down"


def changed(since: float, wall: float) -> bool:
    """Whether a transition at ``since`` is recent at ``wall`` (:data:`RECENT_SECONDS`)."""
    return wall - since <= RECENT_SECONDS


def target_matches(fact: TargetFact, state: str, wall: float, differs: bool) -> bool:
    """Whether ``fact`` passes the ``state`` filter (``""``: always).

    Args:
        fact: the target.
        state: one of :data:`STATES`, or "".
        wall: now (Unix seconds), for ``changed``.
        differs: whether the target is published under a name whose answer differs
            from its primary (for ``differs``).
    """
    if not state:
        return True
    if state in ("up", "down", "unknown"):
        return fact.state == state
    if state == "overridden":
        return fact.overridden
    if state == "changed":
        return changed(fact.since, wall)
    if state == "held":
        return fact.held
    return differs


def target_order_key(fact: TargetFact, wall: float, rank: int) -> tuple[int, float, int]:
    """The sort key of ``order=status``: problems, then recent changes (newest first),
    then the rest; ties by ``rank`` (the address order)."""
    if fact.down:
        return (_RANK_PROBLEM, 0.0, rank)
    if changed(fact.since, wall):
        return (_RANK_CHANGED, -fact.since, rank)
    return (_RANK_REST, 0.0, rank)


# --------------------------------------------------------------------------- names


@dataclass(frozen=True, slots=True)
class Answer:
    """What a name publishes now, against what its primary pool would.

    Attributes:
        serving: indexes of the name's pools with an address in DNS now, in priority
            order (0: the primary).
        kind: ``"primary"`` (only the primary's addresses, none of them held),
            ``"backup"`` (a backup serves and the primary does not), ``"fail-open"``
            (every address is down: the primary's are kept), ``"brake"`` (the brake
            keeps a down address in DNS), ``"mixed"`` (primary and backups at once,
            while changes are made), ``"none"`` (no record read yet).
        marks: one line per way the answer differs from the primary (empty for
            ``"primary"`` and ``"none"``).
    """

    serving: tuple[int, ...]
    kind: str
    marks: tuple[str, ...] = ()

    @property
    def differs(self) -> bool:
        """Whether the answer differs from what the primary pool alone would give."""
        return bool(self.marks)


def answer_of(
    spec: NameSpec,
    records: Iterable[Record],
    fail_open: Sequence[str],
    held: Collection[str],
    down: Collection[str],
    pool_sets: Sequence[frozenset[str]] | None = None,
) -> Answer:
    """How the answer of ``spec`` stands (see :class:`Answer`).

    Args:
        spec: the name and its pools.
        records: the name's records as last read (or, in dry-run, as goavail would
            have them); only A/AAAA records of configured addresses count.
        fail_open: the record types (``"A"``, ``"AAAA"``) in fail-open for this name.
        held: the targets the brake keeps in DNS.
        down: the targets decided down (or drained).
        pool_sets: ``spec``'s pools as sets, same order (:attr:`Index.groups`: built
            once per configuration); made here when None.

    Returns:
        The :class:`Answer`; O(records x pools) with ``pool_sets``.
    """
    sets = pool_sets if pool_sets is not None else [frozenset(pool) for pool in spec.pools]
    present = {
        r.content
        for r in records
        if r.type in ("A", "AAAA") and any(r.content in pool for pool in sets)
    }
    serving = tuple(i for i, pool in enumerate(sets) if not pool.isdisjoint(present))
    marks: list[str] = []
    for family in fail_open:
        marks.append(f"fail-open {family}: every address is down; {spec.pool_name(0)} kept")
    kept = sorted((a for a in present if a in held and a in down), key=address_key)
    if kept:
        shown = ", ".join(kept[:5]) + (f" and {len(kept) - 5} more" if len(kept) > 5 else "")
        marks.append(f"brake holds {shown} in DNS")
    backups = [i for i in serving if i > 0]
    if backups:
        names = ", ".join(spec.pool_name(i) for i in backups)
        verb = "serves" if len(backups) == 1 else "serve"
        marks.append(f"backup {names} {verb}" + ("" if 0 in serving else " instead of the primary"))
    if not present:
        kind = "none"
    elif fail_open:
        kind = "fail-open"
    elif backups and 0 not in serving:
        kind = "backup"
    elif backups:
        kind = "mixed"
    elif kept:
        kind = "brake"
    else:
        kind = "primary"
    return Answer(serving, kind, tuple(marks))


class GroupFact(NamedTuple):
    """What a name's ordering and filters need of one of its pools.

    Attributes:
        down: one of its targets is down (:attr:`TargetFact.down`).
        latest: the newest transition among its targets (Unix seconds; 0 without any).
        states: the filter values one of its targets passes, as :data:`STATE_BITS`
            (``differs`` aside: that is the name's).
    """

    down: bool
    latest: float
    states: int


def group_fact(addresses: Iterable[str], facts: Mapping[str, TargetFact], wall: float) -> GroupFact:
    """The :class:`GroupFact` of a pool from its targets' facts (O(its addresses))."""
    down = False
    latest = 0.0
    states = 0
    bits = STATE_BITS
    for address in addresses:
        fact = facts.get(address)
        if fact is None:
            continue
        down = down or fact.down
        latest = max(latest, fact.since)
        states |= bits[fact.state]
        if fact.overridden:
            states |= bits["overridden"]
        if fact.held:
            states |= bits["held"]
        if wall - fact.since <= RECENT_SECONDS:
            states |= bits["changed"]
    return GroupFact(down, latest, states)


class NameFact(NamedTuple):
    """What ordering and filtering need of one name.

    Attributes:
        spec: the name and its pools.
        answer: how its answer stands.
        down: one of its targets is down (:attr:`TargetFact.down`).
        latest: the newest transition among its targets (Unix seconds; 0 without targets).
        states: the filter values the name passes, as :data:`STATE_BITS`.
    """

    spec: NameSpec
    answer: Answer
    down: bool
    latest: float
    states: int


def name_fact(spec: NameSpec, answer: Answer, pools: Sequence[GroupFact]) -> NameFact:
    """The :class:`NameFact` of ``spec`` from its pools' facts (O(its pools): a backup
    pool shared by many names is summed up once, :func:`group_fact`)."""
    states = 0
    down = False
    latest = 0.0
    for pool in pools:
        states |= pool.states
        down = down or pool.down
        latest = max(latest, pool.latest)
    if answer.differs:
        states |= STATE_BITS["differs"]
    return NameFact(spec, answer, down, latest, states)


def name_order_key(fact: NameFact, wall: float) -> tuple[int, float, str]:
    """The sort key of ``order=status`` for names: a differing answer or a down target,
    then a recent change (newest first), then the rest; ties by name."""
    if fact.answer.differs or fact.down:
        return (_RANK_PROBLEM, 0.0, fact.spec.name)
    if fact.latest and changed(fact.latest, wall):
        return (_RANK_CHANGED, -fact.latest, fact.spec.name)
    return (_RANK_REST, 0.0, fact.spec.name)


def name_matches(fact: NameFact, query: Query) -> bool:
    """Whether a name passes the query's filters."""
    if query.name and query.name not in fact.spec.name:
        return False
    if query.pool and query.pool not in fact.spec.pool_names:
        return False
    return not query.state or bool(fact.states & STATE_BITS[query.state])


# --------------------------------------------------------------------------- pages


class Page(NamedTuple):
    """One page of a list.

    Attributes:
        start: index of the first row shown in the whole (filtered) list (0-based).
        stop: one past the last row shown.
        number: the page shown (from 1; may be past ``pages``: then nothing shows).
        pages: how many pages the filtered list has (at least 1).
        matched: rows in the filtered list.
    """

    start: int
    stop: int
    number: int
    pages: int
    matched: int


def paginate(matched: int, number: int, per_page: int | None) -> Page:
    """The rows of page ``number`` of a list of ``matched`` rows (``per_page`` None: all)."""
    if per_page is None:
        return Page(0, matched, 1, 1, matched)
    pages = max(1, -(-matched // per_page))
    start = min((number - 1) * per_page, matched)
    return Page(start, min(start + per_page, matched), number, pages, matched)


# --------------------------------------------------------------------------- selection


def targets_named(index: Index, text: str) -> set[str]:
    """The targets whose address, or one of whose names, contains ``text`` (O(names +
    memberships + targets))."""
    found = {a for spec in index.specs if text in spec.name for a in spec.addresses}
    found.update(a for a in index.targets if text in a)
    return found


def select_targets(
    facts: Sequence[TargetFact],
    index: Index,
    query: Query,
    wall: float,
    differs: Collection[str],
) -> list[TargetFact]:
    """The targets the query's filters let through, in the query's order.

    Args:
        facts: every target, in configuration order.
        index: the configuration's :class:`Index`.
        query: the filters and order.
        wall: now (Unix seconds).
        differs: targets published under a name whose answer differs from its primary.

    Returns:
        The matching facts; O(n log n) in targets.
    """
    chosen: Iterable[TargetFact] = facts
    if query.name:
        named = targets_named(index, query.name)
        chosen = (f for f in chosen if f.address in named)
    if query.pool:
        members = set(index.pools.get(query.pool, ()))
        chosen = (f for f in chosen if f.address in members)
    if query.state:
        state = query.state
        chosen = (f for f in chosen if target_matches(f, state, wall, f.address in differs))
    result = list(chosen)
    if query.order == "status":
        rank = index.rank
        result.sort(key=lambda f: target_order_key(f, wall, rank.get(f.address, -1)))
    return result


def select_names(facts: Sequence[NameFact], query: Query, wall: float) -> list[NameFact]:
    """The names the query's filters let through (``facts`` sorted by name), in the
    query's order; O(n log n) in names."""
    result = [f for f in facts if name_matches(f, query)] if query.filtered else list(facts)
    if query.order == "status":
        result.sort(key=lambda f: name_order_key(f, wall))
    return result
