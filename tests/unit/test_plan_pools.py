"""The planner with pools (``plan_names``): backups take over when every primary address is
down, hand back once one is up, fail-open when nothing is up, the brake's held addresses
are left alone. Table-driven; pure."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from goavail.dns.model import Record
from goavail.dns.plan import NameSpec, plan, plan_names
from goavail.health import State

U, D, K = State.UP, State.DOWN, State.UNKNOWN
WWW = "www.example.com"
P1, P2 = "192.0.2.1", "192.0.2.2"  # primary
B1, B2 = "198.51.100.1", "198.51.100.2"  # backup
C1 = "203.0.113.1"  # second backup
V6P, V6B = "2001:db8::1", "2001:db8::b"
SPEC = NameSpec(WWW, ((P1, P2), (B1, B2), (C1,)), ("eu", "us", "ap"), ttl=60)


def rec(address: str, name: str = WWW) -> Record:
    return Record(name, "AAAA" if ":" in address else "A", address, ttl=60)


def summary(
    decisions: Mapping[str, State],
    present: list[str],
    spec: NameSpec = SPEC,
    held: tuple[str, ...] = (),
) -> tuple[list[str], list[str]]:
    p = plan_names([spec], decisions, {spec.name: [rec(a) for a in present]}, held=held)
    return (
        [f"{c.action} {c.record.content}" for c in p.changes],
        [f"{f.type} {' '.join(f.kept)}" for f in p.fail_open],
    )


@pytest.mark.parametrize(
    ("decisions", "present", "changes", "fail_open"),
    [
        # start-up: nothing known -> nothing touched, whatever is published
        ({}, [P1, P2], [], []),
        ({}, [B1], [], []),
        # the primary serves; backups are only candidates
        ({P1: U, P2: U, B1: U, B2: U}, [P1, P2], [], []),
        ({P1: U, P2: D, B1: U}, [P1, P2], [f"delete {P2}"], []),
        # every primary address down: the first backup with an up address takes over
        # (its up addresses only; creates before deletes: the name is never empty)
        (
            {P1: D, P2: D, B1: U, B2: D, C1: U},
            [P1, P2],
            [f"create {B1}", f"delete {P1}", f"delete {P2}"],
            [],
        ),
        # ... the first backup all down: the second one
        ({P1: D, P2: D, B1: D, B2: D, C1: U}, [P1], [f"create {C1}", f"delete {P1}"], []),
        # ... a lower backup's records go when a higher one is up again
        ({P1: D, P2: D, B1: U, C1: U}, [C1], [f"create {B1}", f"delete {C1}"], []),
        # the primary up again (its rise threshold is in the decision): hand back
        (
            {P1: U, P2: D, B1: U, B2: U},
            [B1, B2],
            [f"create {P1}", f"delete {B1}", f"delete {B2}"],
            [],
        ),
        # a primary address unknown but present keeps the primary active; the
        # backups' records stay until a primary address is known up
        ({P1: K, P2: D, B1: U}, [P1, P2, B1], [f"delete {P2}"], []),
        # nothing up anywhere: fail-open keeps the primary, withdraws down backups
        (
            {P1: D, P2: D, B1: D, B2: D, C1: D},
            [B1],
            [f"create {P1}", f"create {P2}", f"delete {B1}"],
            ["A 192.0.2.1 192.0.2.2"],
        ),
        ({P1: D, P2: D, B1: D, B2: D, C1: D}, [P1, P2], [], ["A 192.0.2.1 192.0.2.2"]),
        # nothing up, a backup unknown: it is left as it is
        ({P1: D, P2: D, B1: K}, [B1], [f"create {P1}", f"create {P2}"], ["A 192.0.2.1 192.0.2.2"]),
        # records of other addresses are never touched
        ({P1: D, P2: D, B1: U}, [P1, "192.0.2.99"], [f"create {B1}", f"delete {P1}"], []),
    ],
)
def test_pools(
    decisions: Mapping[str, State], present: list[str], changes: list[str], fail_open: list[str]
) -> None:
    assert summary(decisions, present) == (changes, fail_open)


def test_reasons_name_the_pools() -> None:
    decisions = {P1: D, P2: D, B1: U}
    p = plan_names([SPEC], decisions, {WWW: [rec(P1), rec(C1)]})
    reasons = {c.record.content: c.reason for c in p.changes}
    assert reasons == {
        B1: f"target {B1} up in us: no address of eu is up",
        P1: f"target {P1} down",
        C1: f"us serves {WWW}",
    }


def test_families_choose_their_pool_on_their_own() -> None:
    spec = NameSpec(WWW, ((P1, V6P), (B1, V6B)))
    decisions = {P1: D, V6P: U, B1: U, V6B: U}
    assert summary(decisions, [P1, V6P], spec) == ([f"create {B1}", f"delete {P1}"], [])


def test_an_address_in_two_pools_is_kept_by_the_active_one() -> None:
    spec = NameSpec(WWW, ((P1, B1), (B1, B2)))
    # P1 down, B1 up: the primary is still active (B1 is in it); B2 is not wanted
    assert summary({P1: D, B1: U, B2: U}, [P1, B1, B2], spec) == (
        [f"delete {P1}", f"delete {B2}"],
        [],
    )


def test_held_addresses_are_left_as_they_are() -> None:
    spec = NameSpec(WWW, ((P1, P2, B1, B2),))
    decisions = {P1: D, P2: D, B1: D, B2: U}
    assert summary(decisions, [P1, P2, B1, B2], spec, held=(P2, B1)) == ([f"delete {P1}"], [])
    # a held address that is absent is not restored either
    assert summary(decisions, [P1, B2], spec, held=(P2, B1)) == ([f"delete {P1}"], [])


def test_one_pool_names_plan_as_the_original() -> None:
    """``plan`` (every name holds every address) is ``plan_names`` with one pool each."""
    names = [WWW, "api.example.com"]
    decisions = {P1: D, P2: U, B1: K}
    current = {WWW: [rec(P1)], "api.example.com": [rec(P1, "api.example.com")]}
    one_pool = [NameSpec(n, ((P1, P2, B1),), ttl=30) for n in names]
    assert plan(names, [P1, P2, B1], decisions, current, ttl=30) == plan_names(
        one_pool, decisions, current
    )


def test_a_name_listed_twice_is_planned_once() -> None:
    first = NameSpec(WWW, ((P1,),))
    again = NameSpec(WWW, ((P2,),))
    p = plan_names([first, again], {P1: U, P2: U}, {})
    assert [c.record.content for c in p.changes] == [P1]
