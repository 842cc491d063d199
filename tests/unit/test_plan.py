"""Table tests of the planner: decisions + current records -> changes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from goavail.dns.model import FailOpen, Record
from goavail.dns.plan import plan
from goavail.health import State

U, D, K = State.UP, State.DOWN, State.UNKNOWN
WWW = "www.example.com"
API = "api.example.com"
A1, A2, A3 = "192.0.2.1", "192.0.2.2", "192.0.2.3"
V6 = "2001:db8::1"


def rec(content: str, name: str = WWW) -> Record:
    return Record(name, "AAAA" if ":" in content else "A", content, ttl=300)


def summary(
    names: Sequence[str],
    addresses: Sequence[str],
    decisions: Mapping[str, State],
    current: Mapping[str, Sequence[Record]],
) -> list[str]:
    p = plan(names, addresses, decisions, current, ttl=60, proxied=False)
    return [f"{c.action} {c.record.name} {c.record.content}" for c in p.changes]


@pytest.mark.parametrize(
    ("decisions", "present", "expected"),
    [
        # everything up and present: nothing to do
        ({A1: U, A2: U}, [A1, A2], []),
        # one down: withdrawn
        ({A1: U, A2: D}, [A1, A2], [f"delete {WWW} {A2}"]),
        # down and already absent: nothing
        ({A1: U, A2: D}, [A1], []),
        # up and missing: restored
        ({A1: U, A2: U}, [A1], [f"create {WWW} {A2}"]),
        # unknown targets are never touched, present or not
        ({A1: U}, [A1, A2], []),
        ({A1: U, A2: K}, [A1], []),
        ({}, [], []),
        ({}, [A1, A2], []),
        # creates before deletes (make before break)
        ({A1: D, A2: U}, [A1], [f"create {WWW} {A2}", f"delete {WWW} {A1}"]),
        # an unknown address still present keeps the name alive: no fail-open needed
        ({A1: D, A2: K}, [A1, A2], [f"delete {WWW} {A1}"]),
        # fail-open: all down -> keep them all
        ({A1: D, A2: D}, [A1, A2], []),
        # fail-open: all down, some already gone -> restore them
        ({A1: D, A2: D}, [A1], [f"create {WWW} {A2}"]),
        ({A1: D, A2: D}, [], [f"create {WWW} {A1}", f"create {WWW} {A2}"]),
        # fail-open with an unknown absent address: the down ones stay
        ({A1: D, A2: K}, [A1], []),
    ],
)
def test_single_name(
    decisions: Mapping[str, State], present: list[str], expected: list[str]
) -> None:
    current = {WWW: [rec(a) for a in present]}
    assert summary([WWW], [A1, A2], decisions, current) == expected


def test_fail_open_reported() -> None:
    current = {WWW: [rec(A1)]}
    p = plan([WWW], [A1, A2], {A1: D, A2: D}, current)
    assert p.fail_open == (FailOpen(WWW, "A", (A1, A2)),)
    assert [c.reason for c in p.changes] == [
        f"fail-open: every address of {WWW} (A) is down; restoring"
    ]


def test_no_fail_open_when_one_is_up() -> None:
    p = plan([WWW], [A1, A2], {A1: D, A2: U}, {WWW: [rec(A1), rec(A2)]})
    assert p.fail_open == ()
    assert [c.reason for c in p.changes] == [f"target {A1} down"]


def test_unmanaged_records_are_never_touched() -> None:
    unmanaged_addr = rec("198.51.100.7")  # same name, address not configured
    other_name = rec(A1, name="mail.example.com")  # configured address, other name
    current = {WWW: [rec(A1), unmanaged_addr], "mail.example.com": [other_name]}
    changes = plan([WWW], [A1, A2], {A1: D, A2: U}, current).changes
    touched = {c.record.key for c in changes}
    assert unmanaged_addr.key not in touched
    assert other_name.key not in touched
    assert {(c.action, c.record.content) for c in changes} == {("create", A2), ("delete", A1)}


def test_unmanaged_record_does_not_prevent_fail_open() -> None:
    # fail-open counts configured addresses only: with every one down, they all stay
    current = {WWW: [rec(A1), rec(A2), rec("198.51.100.7")]}
    p = plan([WWW], [A1, A2], {A1: D, A2: D}, current)
    assert p.changes == ()
    assert len(p.fail_open) == 1


def test_families_fail_open_independently() -> None:
    current = {WWW: [rec(A1), rec(A2), rec(V6)]}
    p = plan([WWW], [A1, A2, V6], {A1: D, A2: U, V6: D}, current)
    assert [(c.action, c.record.content) for c in p.changes] == [("delete", A1)]
    assert p.fail_open == (FailOpen(WWW, "AAAA", (V6,)),)


def test_aaaa_records_created_with_attributes() -> None:
    p = plan([WWW], [V6], {V6: U}, {}, ttl=120, proxied=True)
    assert p.changes[0].record == Record(WWW, "AAAA", V6, ttl=120, proxied=True)


def test_several_names_each_planned() -> None:
    current = {WWW: [rec(A1), rec(A2)], API: [rec(A1, API)]}
    assert summary([WWW, API], [A1, A2], {A1: D, A2: U}, current) == [
        f"create {API} {A2}",
        f"delete {API} {A1}",
        f"delete {WWW} {A1}",
    ]


def test_duplicate_records_all_deleted() -> None:
    dup1 = Record(WWW, "A", A1, id="r1")
    dup2 = Record(WWW, "A", A1, id="r2")
    p = plan([WWW], [A1, A2], {A1: D, A2: U}, {WWW: [dup1, dup2, rec(A2)]})
    assert [c.record.id for c in p.changes] == ["r1", "r2"]


def test_missing_name_in_current_means_no_records() -> None:
    assert summary([WWW], [A1], {A1: U}, {}) == [f"create {WWW} {A1}"]


def test_plan_is_deterministic() -> None:
    decisions = {A1: D, A2: U, A3: U}
    current = {WWW: [rec(A1)], API: [rec(A1, API)]}
    first = plan([WWW, API], [A3, A1, A2], decisions, current)
    second = plan([API, WWW], [A2, A3, A1], decisions, current)
    assert first == second


def test_changes_caused_by_an_override_say_so() -> None:
    current = {WWW: [rec("192.0.2.1"), rec("192.0.2.2")]}
    decisions = {"192.0.2.1": State.DOWN, "192.0.2.2": State.UP, "192.0.2.3": State.UP}
    result = plan(
        [WWW], ["192.0.2.1", "192.0.2.2", "192.0.2.3"], decisions, current, overridden={"192.0.2.1"}
    )
    assert [(c.action, c.record.content, c.reason) for c in result.changes] == [
        ("create", "192.0.2.3", "target 192.0.2.3 up"),
        ("delete", "192.0.2.1", "target 192.0.2.1 down (override)"),
    ]


def test_a_drain_still_fails_open() -> None:
    # the only address of the name is drained: the name is not emptied
    result = plan(
        [WWW],
        ["192.0.2.1"],
        {"192.0.2.1": State.DOWN},
        {WWW: [rec("192.0.2.1")]},
        overridden={"192.0.2.1"},
    )
    assert result.changes == ()
    assert [f.kept for f in result.fail_open] == [("192.0.2.1",)]


# -- address families: each (name, family) on its own ----------------------------------------------

V6A, V6B = "2001:db8::a", "2001:db8::b"


@pytest.mark.parametrize(
    ("decisions", "present", "expected", "fail_open"),
    [
        # all up, all present: nothing
        ({A1: U, A2: U, V6A: U, V6B: U}, [A1, A2, V6A, V6B], [], []),
        # one AAAA down: only it goes; the A family is not consulted
        ({A1: U, A2: U, V6A: D, V6B: U}, [A1, A2, V6A, V6B], [f"delete {V6A}"], []),
        # the last AAAA is never withdrawn because A records remain
        ({A1: U, A2: U, V6A: D, V6B: D}, [A1, A2, V6A, V6B], [], ["AAAA"]),
        # ... and a withdrawn AAAA comes back when the last one goes down (fail-open)
        ({A1: U, A2: U, V6A: D, V6B: D}, [A1, A2, V6B], [f"create {V6A}"], ["AAAA"]),
        # and vice versa: every A down, AAAA up -> the A records stay
        ({A1: D, A2: D, V6A: U, V6B: U}, [A1, A2, V6A, V6B], [], ["A"]),
        ({A1: D, A2: D, V6A: U, V6B: D}, [A1, V6A, V6B], [f"create {A2}", f"delete {V6B}"], ["A"]),
        # both families all down: each fails open on its own
        (
            {A1: D, A2: D, V6A: D, V6B: D},
            [A1, V6B],
            [f"create {A2}", f"create {V6A}"],
            ["A", "AAAA"],
        ),
        # an up AAAA that is missing is created, an up A present stays
        ({A1: U, V6A: U}, [A1], [f"create {V6A}"], []),
        # an unknown AAAA still present keeps its family alive: the down one goes
        ({A1: U, A2: U, V6A: D, V6B: K}, [A1, A2, V6A, V6B], [f"delete {V6A}"], []),
        # unknown AAAA absent, the other AAAA down: fail-open keeps the down one
        ({A1: U, A2: U, V6A: D, V6B: K}, [A1, A2, V6A], [], ["AAAA"]),
        # the A family down while AAAA is unknown: A fails open, AAAA untouched
        ({A1: D, A2: D}, [A1, A2, V6A], [], ["A"]),
    ],
)
def test_each_family_fails_open_on_its_own(
    decisions: Mapping[str, State],
    present: list[str],
    expected: list[str],
    fail_open: list[str],
) -> None:
    current = {WWW: [rec(a) for a in present]}
    p = plan([WWW], [A1, A2, V6A, V6B], decisions, current, ttl=60)
    assert [f"{c.action} {c.record.content}" for c in p.changes] == expected
    assert [f.type for f in p.fail_open] == fail_open
    for change in p.changes:
        assert change.record.type == ("AAAA" if ":" in change.record.content else "A")


def test_family_with_only_unmanaged_records_still_fails_open() -> None:
    # an unmanaged AAAA at the name does not count as "the name keeps an address"
    current = {WWW: [rec(A1), rec(V6A), rec("2001:db8::ffff")]}
    p = plan([WWW], [A1, V6A], {A1: U, V6A: D}, current)
    assert p.changes == ()
    assert p.fail_open == (FailOpen(WWW, "AAAA", (V6A,)),)


def test_families_of_several_names_are_independent() -> None:
    current = {WWW: [rec(A1), rec(V6A), rec(V6B)], API: [rec(V6A, API)]}
    p = plan([WWW, API], [A1, V6A, V6B], {A1: U, V6A: D, V6B: U}, current)
    assert [(c.action, c.record.name, c.record.content) for c in p.changes] == [
        ("create", API, A1),
        ("create", API, V6B),
        ("delete", API, V6A),
        ("delete", WWW, V6A),
    ]
    assert p.fail_open == ()


def test_ipv6_only_configuration() -> None:
    # no A address configured: the A family of the name is never looked at
    current = {WWW: [rec("192.0.2.200"), rec(V6A)]}
    p = plan([WWW], [V6A, V6B], {V6A: D, V6B: U}, current, ttl=30)
    assert [(c.action, c.record.type, c.record.content, c.record.ttl) for c in p.changes] == [
        ("create", "AAAA", V6B, 30),
        ("delete", "AAAA", V6A, 300),
    ]
