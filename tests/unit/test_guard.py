"""The name guard: table-driven cases of the delete rule and of the per-name gate."""

from __future__ import annotations

import pytest

from goavail.dns.guard import NameGuard, admissible
from goavail.dns.model import Change, Record, RecordType

WWW, API = "www.example.test", "api.example.test"
A1, A2, A3 = "192.0.2.1", "192.0.2.2", "192.0.2.3"
V6 = "2001:db8::1"
OTHER = "198.51.100.7"  # not configured: goavail does not manage it
MANAGED = (A1, A2, A3, V6)


def rec(content: str, name: str = WWW) -> Record:
    rtype: RecordType = "AAAA" if ":" in content else "A"
    return Record(name, rtype, content, ttl=60)


def create(content: str, name: str = WWW) -> Change:
    return Change("create", rec(content, name), "test")


def delete(content: str, name: str = WWW) -> Change:
    return Change("delete", rec(content, name), "test")


def current(*contents: str, name: str = WWW) -> dict[str, list[Record]]:
    return {name: [rec(c, name) for c in contents]}


@pytest.mark.parametrize(
    ("present", "change", "allowed"),
    [
        # a create is always allowed
        ((), create(A1), True),
        ((A1,), create(A2), True),
        # a delete needs another managed address of the same name and family
        ((A1, A2), delete(A1), True),
        ((A1,), delete(A1), False),
        ((), delete(A1), False),
        # an unmanaged address does not keep the name answering
        ((A1, OTHER), delete(A1), False),
        # the other family does not count: AAAA does not answer an A query
        ((A1, V6), delete(A1), False),
        ((A1, V6), delete(V6), False),
        # a delete of an address the guard does not manage is not its business
        ((OTHER,), delete(OTHER), True),
    ],
    ids=[
        "create-empty",
        "create",
        "delete-one-of-two",
        "delete-last",
        "delete-absent",
        "unmanaged-does-not-count",
        "other-family-a",
        "other-family-aaaa",
        "unmanaged-delete",
    ],
)
def test_allows(present: tuple[str, ...], change: Change, allowed: bool) -> None:
    guard = NameGuard(current(*present), MANAGED)
    assert guard.allows(change) is allowed


def test_other_names_do_not_count() -> None:
    guard = NameGuard({**current(A1), **current(A2, name=API)}, MANAGED)
    assert not guard.allows(delete(A1))
    assert guard.present(API, "A") == {A2}


@pytest.mark.parametrize(
    ("change", "ok", "present_after"),
    [
        (create(A2), True, {A1, A2}),
        (create(A2), False, {A1}),  # a failed create adds nothing
        (delete(A1), True, set()),
        (delete(A1), False, set()),  # a failed delete may have landed
        (create(OTHER), True, {A1}),  # unmanaged: ignored
    ],
    ids=["create-ok", "create-failed", "delete-ok", "delete-failed", "unmanaged"],
)
def test_settle(change: Change, ok: bool, present_after: set[str]) -> None:
    guard = NameGuard(current(A1), MANAGED)
    guard.settle(change, ok)
    assert guard.present(WWW, "A") == present_after


def test_failed_create_holds_back_the_delete_that_counted_on_it() -> None:
    # issue 12, case 1: the name holds only A1 (down); A2 (up) must be created first
    guard = NameGuard(current(A1), MANAGED)
    guard.settle(create(A2), ok=False)
    assert not guard.allows(delete(A1))
    guard.settle(create(A2), ok=True)
    assert guard.allows(delete(A1))


@pytest.mark.parametrize(
    ("present", "changes", "admitted", "waiting"),
    [
        # make before break: the create makes room for the delete
        ((A1,), [create(A2), delete(A1)], [create(A2), delete(A1)], []),
        # the create is held for another agent: the delete waits with it (issue 12, case 2)
        ((A1,), [delete(A1)], [], [delete(A1)]),
        # two deletes of three: both go, one address remains
        ((A1, A2, A3), [delete(A1), delete(A2)], [delete(A1), delete(A2)], []),
        # deletes of all: the last one waits (the planner's fail-open never plans this)
        ((A1, A2), [delete(A1), delete(A2)], [delete(A1)], [delete(A2)]),
        # names are independent
        (
            (A1,),
            [create(A2, API), delete(A1)],
            [create(A2, API)],
            [delete(A1)],
        ),
    ],
    ids=["make-before-break", "held-create", "two-of-three", "all", "other-name"],
)
def test_admissible(
    present: tuple[str, ...],
    changes: list[Change],
    admitted: list[Change],
    waiting: list[Change],
) -> None:
    assert admissible(current(*present), changes, MANAGED) == (tuple(admitted), tuple(waiting))
