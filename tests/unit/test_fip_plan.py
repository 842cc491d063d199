"""Table tests of the floating-IP planner (flipper's rules one by one) and a property test
of the plan over random fleets and health: stable, minimal, even, location-first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goavail.fip.plan import FloatingIp, Plan, Server, loads, plan, resource_index
from goavail.health import State

U, D, K = State.UP, State.DOWN, State.UNKNOWN


def srv(n: int, location: str = "fsn1", index: int | None = None) -> Server:
    """Server ``n``: id n, name ``s<n>``, address 127.0.0.<n+1>."""
    return Server(id=n, name=f"s{n}", location=location, address=f"127.0.0.{n + 1}", index=index)


def fip(
    n: int, location: str = "fsn1", index: int | None = None, on: int | None = None
) -> FloatingIp:
    """Floating IP ``n``: id 100+n, name ``f<n>``, currently on server ``on``."""
    return FloatingIp(
        id=100 + n,
        name=f"f{n}",
        address=f"203.0.113.{n + 1}",
        location=location,
        index=index,
        server=on,
    )


def health(servers: Sequence[Server], states: Sequence[State]) -> dict[str, State]:
    return {s.address: state for s, state in zip(servers, states, strict=True)}


def placed(result: Plan) -> dict[str, str]:
    """IP name -> server name of a plan (ids map back through the fixtures' naming)."""
    return {f"f{ip - 100}": f"s{server}" for ip, server in sorted(result.targets.items())}


FLEET3 = [srv(0), srv(1), srv(2)]


@pytest.mark.parametrize(
    ("case", "servers", "states", "ips", "expected", "moved"),
    [
        (
            "fresh fleet: round-robin by load, then name",
            FLEET3,
            [U, U, U],
            [fip(0), fip(1), fip(2), fip(3)],
            {"f0": "s0", "f1": "s1", "f2": "s2", "f3": "s0"},
            ["f0", "f1", "f2", "f3"],
        ),
        (
            "healthy assignments never move (even when uneven)",
            FLEET3,
            [U, U, U],
            [fip(0, on=1), fip(1, on=1)],
            {"f0": "s1", "f1": "s1"},
            [],
        ),
        (
            "a down server's IPs go to the least loaded healthy server",
            FLEET3,
            [D, U, U],
            [fip(0, on=0), fip(1, on=1), fip(2, on=2), fip(3, on=0)],
            {"f0": "s1", "f1": "s1", "f2": "s2", "f3": "s2"},
            ["f0", "f3"],
        ),
        (
            "every server down: all considered healthy, nothing moves",
            FLEET3,
            [D, D, D],
            [fip(0, on=0), fip(1, on=2)],
            {"f0": "s0", "f1": "s2"},
            [],
        ),
        (
            "every server down: not even the canonical target pulls an IP back",
            [srv(0, index=0), srv(1, index=1)],
            [D, D],
            [fip(0, index=0, on=1)],
            {"f0": "s1"},
            [],
        ),
        (
            "every server down: an unassigned IP is still placed",
            FLEET3,
            [D, D, D],
            [fip(0)],
            {"f0": "s0"},
            ["f0"],
        ),
        (
            "an IP on a server outside the group is re-targeted",
            FLEET3,
            [U, U, U],
            [fip(0, on=99)],
            {"f0": "s0"},
            ["f0"],
        ),
        (
            "resource_index gives the canonical target",
            [srv(0, index=0), srv(1, index=1)],
            [U, U],
            [fip(0, index=1), fip(1, index=0)],
            {"f0": "s1", "f1": "s0"},
            ["f0", "f1"],
        ),
        (
            "the canonical target comes back when its server is healthy again",
            [srv(0, index=0), srv(1, index=1)],
            [U, U],
            [fip(0, index=0, on=1), fip(1, index=1, on=1)],
            {"f0": "s0", "f1": "s1"},
            ["f0"],
        ),
        (
            "a canonical target that is down: its IP goes round-robin",
            [srv(0, index=0), srv(1, index=1), srv(2, index=2)],
            [D, U, U],
            [fip(0, index=0, on=0), fip(1, index=1, on=1), fip(2, index=2, on=2)],
            {"f0": "s1", "f1": "s1", "f2": "s2"},
            ["f0"],
        ),
        (
            "resource_index only matches within the IP's location",
            [srv(0, "fsn1", index=0), srv(1, "nbg1", index=1)],
            [U, U],
            [fip(0, "fsn1", index=1)],
            {"f0": "s0"},
            ["f0"],
        ),
        (
            "a server in the IP's own location is preferred",
            [srv(0, "nbg1"), srv(1, "fsn1")],
            [U, U],
            [fip(0, "fsn1"), fip(1, "fsn1")],
            {"f0": "s1", "f1": "s1"},
            ["f0", "f1"],
        ),
        (
            "a healthy server elsewhere does not keep an IP whose location has one",
            [srv(0, "nbg1"), srv(1, "fsn1")],
            [U, U],
            [fip(0, "fsn1", on=0)],
            {"f0": "s1"},
            ["f0"],
        ),
        (
            "no healthy server in the IP's location: another location's",
            [srv(0, "nbg1"), srv(1, "fsn1")],
            [U, D],
            [fip(0, "fsn1", on=1)],
            {"f0": "s0"},
            ["f0"],
        ),
    ],
)
def test_rules(
    case: str,
    servers: list[Server],
    states: list[State],
    ips: list[FloatingIp],
    expected: dict[str, str],
    moved: list[str],
) -> None:
    result = plan(servers, ips, health(servers, states))
    assert placed(result) == expected, case
    assert [m.ip.name for m in result.moves] == moved, case
    assert result.pending == ()


def test_the_readme_example_without_and_with_resource_index() -> None:
    """flipper's README: server-0 down; its IP goes to the least loaded server by name."""
    servers = [srv(i) for i in range(4)]
    ips = [fip(i, on=i) for i in range(4)]
    down = plan(servers, ips, health(servers, [D, U, U, U]))
    assert placed(down) == {"f0": "s1", "f1": "s1", "f2": "s2", "f3": "s3"}
    indexed_servers = [srv(i, index=i) for i in range(4)]
    indexed = [fip(i, index=i, on=down.targets[100 + i]) for i in range(4)]
    back = plan(indexed_servers, indexed, health(indexed_servers, [U, U, U, U]))
    assert [m.ip.name for m in back.moves] == ["f0"]  # only the IP that left comes back
    assert placed(back) == {"f0": "s0", "f1": "s1", "f2": "s2", "f3": "s3"}


def test_pending_health_plans_nothing() -> None:
    result = plan(FLEET3, [fip(0, on=0)], health(FLEET3, [D, U, K]))
    assert result.pending == ("s2",)
    assert result.moves == () and result.targets == {}


def test_all_down_is_reported() -> None:
    assert plan(FLEET3, [fip(0, on=0)], health(FLEET3, [D, D, D])).all_down
    assert not plan(FLEET3, [fip(0, on=0)], health(FLEET3, [D, U, D])).all_down


def test_no_servers_no_plan() -> None:
    assert plan([], [fip(0, on=3)], {}) == Plan()


def test_reasons_name_the_rule() -> None:
    result = plan(FLEET3, [fip(0, on=0), fip(1)], health(FLEET3, [D, U, U]))
    assert [m.reason for m in result.moves] == [
        "server s0 is down: least loaded healthy server in its location",
        "unassigned: least loaded healthy server in its location",
    ]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({}, None),
        ({"resource_index": "0"}, 0),
        ({"resource_index": "12"}, 12),
        ({"resource_index": "-1"}, None),
        ({"resource_index": "one"}, None),
        ({"resource_index": "\u0661"}, None),
    ],
)
def test_resource_index_label(labels: Mapping[str, str], expected: int | None) -> None:
    assert resource_index(labels) == expected


# -- property test: random fleets and health ------------------------------------------

LOCATIONS = ("fsn1", "nbg1", "hel1")


@st.composite
def fleets(
    draw: st.DrawFn, *, locations: Sequence[str] = LOCATIONS, unique_index: bool = False
) -> tuple[list[Server], list[FloatingIp], dict[str, State]]:
    n = draw(st.integers(1, 7))
    indexes = st.none() | st.integers(0, 6)
    server_index = (
        draw(st.permutations(range(n))) if unique_index else [draw(indexes) for _ in range(n)]
    )
    servers = [
        srv(i, draw(st.sampled_from(locations)), server_index[i] if draw(st.booleans()) else None)
        for i in range(n)
    ]
    m = draw(st.integers(0, 12))
    ip_index = (
        draw(st.permutations(range(m))) if unique_index else [draw(indexes) for _ in range(m)]
    )
    ips = [
        fip(
            j,
            draw(st.sampled_from(locations)),
            ip_index[j] if draw(st.booleans()) else None,
            draw(st.none() | st.integers(0, n)),  # n: a server outside the group
        )
        for j in range(m)
    ]
    states = {s.address: draw(st.sampled_from([U, D])) for s in servers}
    return servers, ips, states


def applied(ips: Sequence[FloatingIp], result: Plan) -> list[FloatingIp]:
    """The IPs after the plan's moves were made."""
    return [
        FloatingIp(ip.id, ip.name, ip.address, ip.location, ip.index, result.targets[ip.id])
        for ip in ips
    ]


@settings(max_examples=300, deadline=None)
@given(fleets(), st.randoms(use_true_random=False))
def test_property_stable_minimal_complete(
    fleet: tuple[list[Server], list[FloatingIp], dict[str, State]], rnd: object
) -> None:
    servers, ips, states = fleet
    result = plan(servers, ips, states)
    # stable: the same input (in any order) gives the same plan
    shuffled_servers, shuffled_ips = list(servers), list(ips)
    rnd.shuffle(shuffled_servers)  # type: ignore[attr-defined]
    rnd.shuffle(shuffled_ips)  # type: ignore[attr-defined]
    assert plan(shuffled_servers, shuffled_ips, dict(states)) == result
    # complete: every IP targets a server considered healthy
    considered = {s.id for s in servers if states[s.address] is U} or {s.id for s in servers}
    assert set(result.targets) == {ip.id for ip in ips}
    assert set(result.targets.values()) <= considered
    # location first: an IP leaves its location only when no server there is healthy
    by_id = {s.id: s for s in servers}
    for ip in ips:
        local = [s for s in servers if s.location == ip.location and s.id in considered]
        assert bool(local) <= (by_id[result.targets[ip.id]].location == ip.location)
    # minimal: an IP on a healthy server of its preferred location moves only to its
    # canonical target
    for move in result.moves:
        current = by_id.get(move.source) if move.source is not None else None
        if current is None or current.id not in considered:
            continue
        local = [s for s in servers if s.location == move.ip.location and s.id in considered]
        if local and current.location != move.ip.location:
            continue  # leaving another location for its own
        assert move.ip.index is not None and move.target.index == move.ip.index
    # a fixpoint: once applied, the plan asks for no further move
    assert plan(servers, applied(ips, result), states).moves == ()


@settings(max_examples=300, deadline=None)
@given(fleets(locations=("fsn1",), unique_index=True))
def test_property_even_from_scratch(
    fleet: tuple[list[Server], list[FloatingIp], dict[str, State]],
) -> None:
    """Placed from scratch (no IP on a healthy server), in one location, with
    resource_index used as flipper intends (each index once): loads differ by at most one."""
    servers, ips, states = fleet
    fresh = [FloatingIp(ip.id, ip.name, ip.address, ip.location, ip.index, None) for ip in ips]
    result = plan(servers, fresh, states)
    considered = [s.id for s in servers if states[s.address] is U] or [s.id for s in servers]
    counts = loads(result.targets)
    per_server = [counts.get(s, 0) for s in considered]
    assert max(per_server) - min(per_server) <= 1


@settings(max_examples=200, deadline=None)
@given(fleets(locations=("fsn1",), unique_index=True), st.data())
def test_property_failover_and_back(
    fleet: tuple[list[Server], list[FloatingIp], dict[str, State]], data: st.DataObject
) -> None:
    """From the all-healthy placement, a server going down moves only its IPs, and when it
    is healthy again the IPs with a canonical partner come back to it."""
    servers, ips, _ = fleet
    up = {s.address: U for s in servers}
    start = applied(
        ips,
        plan(
            servers,
            [FloatingIp(i.id, i.name, i.address, i.location, i.index, None) for i in ips],
            up,
        ),
    )
    victim = data.draw(st.sampled_from(servers))
    down = {**up, victim.address: D}
    failed = plan(servers, start, down)
    assert {m.ip.id for m in failed.moves} == (
        {ip.id for ip in start if ip.server == victim.id} if len(servers) > 1 else set()
    )
    back = plan(servers, applied(start, failed), up)
    for ip in applied(applied(start, failed), back):
        if ip.index is not None and victim.index == ip.index:
            assert ip.server == victim.id
