"""The status listing (goavail/web/listing.py): query parameters, order, filters, pages and
how a name's answer stands against its primary pool, as tables."""

from __future__ import annotations

import pytest

from goavail.dns.model import Record
from goavail.dns.plan import NameSpec
from goavail.web.listing import (
    API_DEFAULTS,
    MAX_PER_PAGE,
    PAGE_DEFAULTS,
    RECENT_SECONDS,
    STATE_BITS,
    Answer,
    IndexCache,
    NameFact,
    Query,
    TargetFact,
    address_key,
    answer_of,
    build_index,
    group_fact,
    name_fact,
    paginate,
    parse_query,
    select_names,
    select_targets,
    target_matches,
)

NOW = 1_000_000.0
OLD = NOW - RECENT_SECONDS - 1
POOLS = ("web", "web-backup", "db")

# --------------------------------------------------------------------------- query


@pytest.mark.parametrize(
    ("params", "defaults", "query", "problems"),
    [
        ({}, PAGE_DEFAULTS, Query(), []),
        ({}, API_DEFAULTS, Query(order="config", per_page=None), []),
        (
            {"name": " API ", "pool": "web", "state": "Down", "page": "3", "per_page": "20"},
            PAGE_DEFAULTS,
            Query(name="api", pool="web", state="down", page=3, per_page=20),
            [],
        ),
        ({"per_page": "50000"}, PAGE_DEFAULTS, Query(per_page=MAX_PER_PAGE), []),
        # asking the API for a page gives pages of the default size
        ({"page": "2"}, API_DEFAULTS, Query(order="config", page=2, per_page=100), []),
        ({"names_page": "4", "order": "status"}, API_DEFAULTS, Query(names_page=4), []),
        ({"unknown": "x", "page": ""}, PAGE_DEFAULTS, Query(), []),
        (
            {"state": "sideways", "pool": "nope", "page": "0", "per_page": "ten", "order": "x"},
            PAGE_DEFAULTS,
            Query(),
            [
                "pool: 'nope' is not a configured pool",
                "state: 'sideways' is not one of up, down, unknown, overridden, changed, "
                "held, differs",
                "order: 'x' is not one of status, config",
                "page: must be at least 1, got 0",
                "per_page: 'ten' is not a whole number",
            ],
        ),
        ({"name": "x" * 201}, PAGE_DEFAULTS, Query(), ["name: at most 200 characters"]),
    ],
)
def test_parse_query(
    params: dict[str, str], defaults: Query, query: Query, problems: list[str]
) -> None:
    assert parse_query(params, POOLS, defaults) == (query, problems)


@pytest.mark.parametrize(
    ("query", "changes", "text"),
    [
        (Query(), {}, ""),
        (Query(), {"page": 2}, "page=2"),
        (
            Query(name="api x", state="down", per_page=20),
            {"page": 1},
            "name=api+x&state=down&per_page=20",
        ),
        (Query(pool="web", page=3), {"names_page": 2}, "pool=web&page=3&names_page=2"),
        (Query(order="config"), {}, "order=config"),
    ],
)
def test_links_keep_the_filters(query: Query, changes: dict[str, int], text: str) -> None:
    assert query.params(PAGE_DEFAULTS, **changes) == text


@pytest.mark.parametrize(
    ("matched", "number", "per_page", "page"),
    [
        (0, 1, 100, (0, 0, 1, 1, 0)),
        (250, 1, 100, (0, 100, 1, 3, 250)),
        (250, 3, 100, (200, 250, 3, 3, 250)),
        (250, 9, 100, (250, 250, 9, 3, 250)),  # past the end: nothing
        (250, 1, None, (0, 250, 1, 1, 250)),
        (100, 1, 100, (0, 100, 1, 1, 100)),
    ],
)
def test_paginate(matched: int, number: int, per_page: int | None, page: tuple[int, ...]) -> None:
    assert tuple(paginate(matched, number, per_page)) == page


def test_addresses_sort_numerically_v4_first() -> None:
    addresses = ["2001:db8::1", "192.0.2.10", "192.0.2.9", "192.0.2.1"]
    assert sorted(addresses, key=address_key) == [
        "192.0.2.1",
        "192.0.2.9",
        "192.0.2.10",
        "2001:db8::1",
    ]


# --------------------------------------------------------------------------- targets


def fact(
    address: str,
    state: str = "up",
    *,
    effective: str | None = None,
    since: float = OLD,
    overridden: bool = False,
    held: bool = False,
) -> TargetFact:
    return TargetFact(address, state, effective or state, overridden, since, held)


A1, A2, A10, B1, B2, D1 = (
    "192.0.2.1",
    "192.0.2.2",
    "192.0.2.10",
    "198.51.100.1",
    "198.51.100.2",
    "203.0.113.1",
)
SPECS = (
    NameSpec("api.example.test", ((A1, A2, A10), (B1, B2)), ("web", "web-backup")),
    NameSpec("db.example.test", ((D1,),), ("db",)),
)
INDEX = build_index(
    SPECS, {"web": (A1, A2, A10), "web-backup": (B1, B2), "db": (D1,)}, (A10, A2, A1, B1, B2, D1)
)


@pytest.mark.parametrize(
    ("facts", "order"),
    [
        # nothing wrong, nothing recent: by address (numerically), not configuration order
        ([fact(A10), fact(A2), fact(A1)], [A1, A2, A10]),
        # down first (by address), then recent changes newest first, then the rest
        (
            [
                fact(A10, "down", since=NOW - 5),
                fact(A2, since=NOW - 60),
                fact(A1),
                fact(B1, since=NOW - 10),
                fact(B2, "down", since=NOW - 500),
                fact(D1),
            ],
            [A10, B2, B1, A2, A1, D1],
        ),
        # drained (withdrawn by an override) counts as down; an up override does not
        (
            [fact(A10), fact(A2, effective="down", overridden=True), fact(A1, overridden=True)],
            [A2, A1, A10],
        ),
        # unknown is neither down nor a change on its own
        ([fact(A2, "unknown"), fact(A1)], [A1, A2]),
    ],
)
def test_targets_problems_first_then_changes_then_the_rest(
    facts: list[TargetFact], order: list[str]
) -> None:
    chosen = select_targets(facts, INDEX, Query(), NOW, ())
    assert [f.address for f in chosen] == order
    config = select_targets(facts, INDEX, Query(order="config"), NOW, ())
    assert [f.address for f in config] == [f.address for f in facts]


FLEET = [
    fact(A10, "down", since=NOW - 5),
    fact(A2, effective="down", overridden=True),
    fact(A1, since=NOW - 60),
    fact(B1, held=True, state="down"),
    fact(B2, "unknown"),
    fact(D1),
]


@pytest.mark.parametrize(
    ("query", "addresses"),
    [
        (Query(name="api"), [A2, A10, B1, A1, B2]),  # the drained A2 counts as down
        (Query(name="db."), [D1]),
        (Query(name="198.51"), [B1, B2]),  # an address's part matches too
        (Query(name="nothing"), []),
        (Query(pool="web-backup"), [B1, B2]),
        (Query(state="down"), [A10, B1]),  # this agent's health
        (Query(state="unknown"), [B2]),
        (Query(state="up"), [A2, A1, D1]),
        (Query(state="overridden"), [A2]),
        (Query(state="changed"), [A10, A1]),
        (Query(state="held"), [B1]),
        (Query(state="differs"), [A2, A10, B1, A1, B2]),  # api.example.test differs
        (Query(name="api", pool="web", state="down"), [A10]),
    ],
)
def test_target_filters(query: Query, addresses: list[str]) -> None:
    differs = set(SPECS[0].addresses)
    chosen = select_targets(FLEET, INDEX, query, NOW, differs)
    assert [f.address for f in chosen] == addresses
    state = query.state
    assert all(target_matches(f, state, NOW, f.address in differs) for f in chosen)


def test_the_index_knows_each_targets_pools_and_names() -> None:
    assert INDEX.pools_of[A1] == ("web",)
    assert INDEX.names_of[B1] == ("api.example.test",)
    assert INDEX.groups_of["api.example.test"] == ("web", "web-backup")
    assert [INDEX.rank[a] for a in (A1, A2, A10, B1, B2, D1)] == [0, 1, 2, 3, 4, 5]


def test_the_index_is_built_once_per_configuration() -> None:
    cache = IndexCache()
    pools = {"db": (D1,)}
    specs, targets = SPECS[1:], (D1,)
    first = cache.get(specs, pools, targets)
    assert cache.get(specs, pools, targets) is first
    assert cache.get(specs, dict(pools), targets) is not first  # a reload's new value


# --------------------------------------------------------------------------- names


def records(*addresses: str) -> list[Record]:
    return [Record("api.example.test", "A", a) for a in addresses]


API = SPECS[0]


@pytest.mark.parametrize(
    ("current", "fail_open", "held", "down", "answer"),
    [
        ([], [], (), (), Answer((), "none")),
        (records(A1, A2), [], (), (), Answer((0,), "primary")),
        # records goavail does not manage do not count
        (
            [*records(A1), Record("api.example.test", "A", "192.0.2.99")],
            [],
            (),
            (),
            Answer((0,), "primary"),
        ),
        ([Record("api.example.test", "AAAA", "2001:db8::99")], [], (), (), Answer((), "none")),
        (
            records(B1, B2),
            [],
            (),
            (A1, A2, A10),
            Answer((1,), "backup", ("backup web-backup serves instead of the primary",)),
        ),
        (
            records(A1, B1),
            [],
            (),
            (),
            Answer((0, 1), "mixed", ("backup web-backup serves",)),
        ),
        (
            records(A1, A2, A10),
            ["A"],
            (),
            (A1, A2, A10, B1, B2),
            Answer((0,), "fail-open", ("fail-open A: every address is down; web kept",)),
        ),
        (
            records(A1, A2, A10),
            [],
            (A2, A10),
            (A2, A10),
            Answer((0,), "brake", ("brake holds 192.0.2.2, 192.0.2.10 in DNS",)),
        ),
        # a held target that is up again is no longer held in the answer
        (records(A1, A2), [], (A2,), (), Answer((0,), "primary")),
    ],
)
def test_how_a_names_answer_stands(
    current: list[Record],
    fail_open: list[str],
    held: tuple[str, ...],
    down: tuple[str, ...],
    answer: Answer,
) -> None:
    assert answer_of(API, current, fail_open, held, down) == answer
    sets = [INDEX.groups[key] for key in INDEX.groups_of[API.name]]
    assert answer_of(API, current, fail_open, held, down, sets) == answer
    assert answer.differs is bool(answer.marks)


def name_facts(answers: dict[str, Answer], facts: list[TargetFact]) -> list[NameFact]:
    by_address = {f.address: f for f in facts}
    groups = {k: group_fact(v, by_address, NOW) for k, v in INDEX.groups.items()}
    return [
        name_fact(spec, answers[spec.name], [groups[k] for k in INDEX.groups_of[spec.name]])
        for spec in INDEX.specs
    ]


PRIMARY = Answer((0,), "primary")
BACKUP = Answer((1,), "backup", ("backup web-backup serves instead of the primary",))


@pytest.mark.parametrize(
    ("answers", "facts", "order"),
    [
        # nothing wrong: by name
        (
            {"api.example.test": PRIMARY, "db.example.test": PRIMARY},
            [fact(A1), fact(D1)],
            ["api", "db"],
        ),
        # a down target puts its name first
        (
            {"api.example.test": PRIMARY, "db.example.test": PRIMARY},
            [fact(A1), fact(D1, "down")],
            ["db", "api"],
        ),
        # an answer that differs from the primary does too, even with every target up
        (
            {"api.example.test": BACKUP, "db.example.test": PRIMARY},
            [fact(A1), fact(D1, since=NOW - 1)],
            ["api", "db"],
        ),
        # a recent change comes before the rest
        (
            {"api.example.test": PRIMARY, "db.example.test": PRIMARY},
            [fact(A1), fact(D1, since=NOW - 1)],
            ["db", "api"],
        ),
    ],
)
def test_names_problems_first(
    answers: dict[str, Answer], facts: list[TargetFact], order: list[str]
) -> None:
    chosen = select_names(name_facts(answers, facts), Query(), NOW)
    assert [n.spec.name.split(".")[0] for n in chosen] == order


@pytest.mark.parametrize(
    ("query", "names"),
    [
        (Query(name="db"), ["db"]),
        (Query(pool="web-backup"), ["api"]),
        (Query(state="differs"), ["api"]),
        (Query(state="held"), ["api"]),  # B1, of its backup pool
        (Query(state="down"), ["api"]),
        (Query(state="up"), ["api", "db"]),
        (Query(state="overridden"), ["api"]),
        (Query(state="unknown"), ["api"]),
        (Query(state="changed"), ["api"]),
        (Query(name="db", state="down"), []),
    ],
)
def test_name_filters(query: Query, names: list[str]) -> None:
    answers = {"api.example.test": BACKUP, "db.example.test": PRIMARY}
    chosen = select_names(name_facts(answers, FLEET), query, NOW)
    assert [n.spec.name.split(".")[0] for n in chosen] == names


def test_state_bits_are_distinct() -> None:
    assert len(set(STATE_BITS.values())) == len(STATE_BITS)
    assert all(bit & (bit - 1) == 0 for bit in STATE_BITS.values())
