"""The planner's all-down policies (``all_down``: fail-open, backup, fail-closed), its TTL
rule (``degraded_ttl``) and the per-name explanations. Table-driven; pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from goavail.dns.audit import AuditLog
from goavail.dns.guard import admissible
from goavail.dns.model import AllDown, Record
from goavail.dns.plan import NameSpec, plan_names
from goavail.dns.providers.memory import MemoryProvider
from goavail.dns.reconcile import Reconciler
from goavail.health import State

U, D, K = State.UP, State.DOWN, State.UNKNOWN
WWW = "www.example.com"
P1, P2 = "192.0.2.1", "192.0.2.2"  # primary "eu"
B1, B2 = "198.51.100.1", "198.51.100.2"  # backup "us"
C1 = "203.0.113.1"  # last pool "sorry"
V6 = "2001:db8::1"
SPEC = NameSpec(WWW, ((P1, P2), (B1, B2), (C1,)), ("eu", "us", "sorry"), ttl=300)


def rec(address: str, ttl: int | None = 300) -> Record:
    return Record(WWW, "AAAA" if ":" in address else "A", address, ttl=ttl)


def summary(
    policy: AllDown,
    decisions: Mapping[str, State],
    present: list[str],
    held: tuple[str, ...] = (),
) -> tuple[list[str], list[str], list[str], str]:
    spec = replace(SPEC, all_down=policy)
    p = plan_names([spec], decisions, {WWW: [rec(a) for a in present]}, held=held)
    explanation = p.explain(WWW)
    assert explanation is not None
    [family] = explanation.families
    return (
        [f"{c.action} {c.record.content}" for c in p.changes],
        [" ".join(f.kept) for f in p.fail_open],
        [" ".join(f.down) for f in p.fail_closed],
        f"{family.rule} {family.pool}".strip(),
    )


ALL_DOWN = {P1: D, P2: D, B1: D, B2: D, C1: D}
ALL_DOWN_TEXT = f"{P1} {P2} {B1} {B2} {C1}"

# (policy, decisions, present) -> (changes, fail-open kept, fail-closed down, rule)
CASES = [
    # every policy: the primary serves while one of its addresses is up ...
    *(
        (policy, {P1: U, P2: D, B1: U}, [P1, P2], [f"delete {P2}"], [], [], "primary eu")
        for policy in ("fail-open", "backup", "fail-closed")
    ),
    # ... and a backup takes over when the primary is down and the backup up
    *(
        (
            policy,
            {P1: D, P2: D, B1: U, B2: D, C1: U},
            [P1, P2],
            [f"create {B1}", f"delete {P1}", f"delete {P2}"],
            [],
            [],
            "backup us",
        )
        for policy in ("fail-open", "backup", "fail-closed")
    ),
    # ... and nothing is touched while nothing is known about the primary
    *(
        (policy, {}, [B1], [], [], [], "unknown")
        for policy in ("fail-open", "backup", "fail-closed")
    ),
    # all down, fail-open: the primary's addresses are kept (restored), backups' go
    (
        "fail-open",
        ALL_DOWN,
        [B1, P1],
        [f"create {P2}", f"delete {B1}"],
        [f"{P1} {P2}"],
        [],
        "fail-open eu",
    ),
    # all down, backup: the last pool is kept (restored), every other pool's go
    (
        "backup",
        ALL_DOWN,
        [P1, P2],
        [f"create {C1}", f"delete {P1}", f"delete {P2}"],
        [C1],
        [],
        "fail-open sorry",
    ),
    ("backup", ALL_DOWN, [C1], [], [C1], [], "fail-open sorry"),
    # ... the last pools not known yet: the last pool with a down address is kept
    (
        "backup",
        {P1: D, P2: D, B1: D, B2: K},
        [P1],
        [f"create {B1}", f"delete {P1}"],
        [B1],
        [],
        "fail-open us",
    ),
    (
        "backup",
        {P1: D, P2: D},
        [P1],
        [f"create {P2}"],
        [f"{P1} {P2}"],
        [],
        "fail-open eu",
    ),
    # all down, fail-closed: every down record goes, nothing is created
    (
        "fail-closed",
        ALL_DOWN,
        [P1, P2, B1],
        [f"delete {P1}", f"delete {P2}", f"delete {B1}"],
        [],
        [ALL_DOWN_TEXT],
        "fail-closed",
    ),
    # ... already empty: the case stays engaged, with nothing left to do
    ("fail-closed", ALL_DOWN, [], [], [], [ALL_DOWN_TEXT], "fail-closed"),
    # ... an unknown address present is never withdrawn (only down ones)
    (
        "fail-closed",
        {P1: D, P2: D, B1: K},
        [P1, B1],
        [f"delete {P1}"],
        [],
        [f"{P1} {P2}"],
        "fail-closed",
    ),
    # ... unmanaged records are not touched either
    (
        "fail-closed",
        ALL_DOWN,
        [P1, "192.0.2.99"],
        [f"delete {P1}"],
        [],
        [ALL_DOWN_TEXT],
        "fail-closed",
    ),
    # ... and a name whose primary is up again is restored
    ("fail-closed", {**ALL_DOWN, P2: U}, [], [f"create {P2}"], [], [], "primary eu"),
]


@pytest.mark.parametrize(
    ("policy", "decisions", "present", "changes", "kept", "down", "rule"), CASES
)
def test_all_down_policies(
    policy: AllDown,
    decisions: Mapping[str, State],
    present: list[str],
    changes: list[str],
    kept: list[str],
    down: list[str],
    rule: str,
) -> None:
    assert summary(policy, decisions, present) == (changes, kept, down, rule)


def test_fail_closed_keeps_what_the_brake_holds() -> None:
    """The brake still gates withdrawals: a held address stays even under fail-closed."""
    changes, _, down, rule = summary("fail-closed", ALL_DOWN, [P1, P2], held=(P2,))
    assert (changes, rule) == ([f"delete {P1}"], "fail-closed")
    assert down == [ALL_DOWN_TEXT]


def test_fail_closed_reasons_say_so() -> None:
    spec = replace(SPEC, all_down="fail-closed")
    p = plan_names([spec], ALL_DOWN, {WWW: [rec(P1)]})
    [change] = p.changes
    assert change.reason == (
        f"fail-closed: every address of {WWW} (A) is down; withdrawing {P1} "
        "(all_down = fail-closed)"
    )


def test_the_guard_empties_only_fail_closed_names() -> None:
    """The plan's fail-closed cases are the only slots the guard lets be emptied."""
    api = "api.example.com"
    closed = replace(SPEC, all_down="fail-closed")
    opened = NameSpec(api, ((P1,), (B1,)))
    current = {WWW: [rec(P1)], api: [Record(api, "A", P1, ttl=300)]}
    p = plan_names([closed, opened], ALL_DOWN, current)
    assert [(c.name, c.type) for c in p.fail_closed] == [(WWW, "A")]
    assert [(c.name, c.kept) for c in p.fail_open] == [(api, (P1,))]
    slots = {(c.name, c.type) for c in p.fail_closed}
    managed = {P1, P2, B1, B2, C1}
    [delete] = p.changes
    assert (delete.action, delete.record.name) == ("delete", WWW)
    # a delete of api's last record (a stale plan, say) is held even beside fail-closed
    stale = replace(delete, record=current[api][0])
    admitted, waiting = admissible(current, [delete, stale], managed, slots)
    assert (admitted, waiting) == ((delete,), (stale,))
    # without the plan's permission the guard holds www's last record too
    assert admissible(current, [delete], managed) == ((), (delete,))


# -- TTL management ---------------------------------------------------------------------

TTL_SPEC = NameSpec(WWW, ((P1, P2, V6),), ("eu",), ttl=300, degraded_ttl=30)


def ttl_summary(
    decisions: Mapping[str, State],
    present: list[tuple[str, int | None]],
    spec: NameSpec = TTL_SPEC,
) -> tuple[list[str], str]:
    p = plan_names([spec], decisions, {WWW: [rec(a, t) for a, t in present]})
    explanation = p.explain(WWW)
    assert explanation is not None
    rule = "" if explanation.ttl is None else f"{explanation.ttl.rule} {explanation.ttl.ttl}"
    return [f"{c.action} {c.record.content} {c.record.ttl}" for c in p.changes], rule


@pytest.mark.parametrize(
    ("decisions", "present", "changes", "rule"),
    [
        # every address up at the normal TTL: nothing to do
        ({P1: U, P2: U, V6: U}, [(P1, 300), (P2, 300), (V6, 300)], [], "normal 300"),
        # one address down: it goes, the others get the lowered TTL (both families)
        (
            {P1: U, P2: D, V6: U},
            [(P1, 300), (P2, 300), (V6, 300)],
            [f"update {P1} 30", f"update {V6} 30", f"delete {P2} 300"],
            "lowered 30",
        ),
        # already lowered: nothing more
        ({P1: U, P2: D, V6: U}, [(P1, 30), (V6, 30)], [], "lowered 30"),
        # back up: created at the normal TTL, the others restored
        (
            {P1: U, P2: U, V6: U},
            [(P1, 30), (V6, 30)],
            [f"create {P2} 300", f"update {P1} 300", f"update {V6} 300"],
            "normal 300",
        ),
        # a create while degraded gets the lowered TTL at once (V6, the only AAAA, is
        # kept by fail-open)
        (
            {P1: U, P2: U, V6: D},
            [(P1, 30), (V6, 30)],
            [f"create {P2} 30"],
            "lowered 30",
        ),
        # none down, one not known yet: TTLs are left as they are
        ({P1: U, P2: K, V6: U}, [(P1, 30), (V6, 300)], [], "unchanged None"),
        # fail-open (all down) is degraded too: kept records get the lowered TTL
        (
            {P1: D, P2: D, V6: U},
            [(P1, 300), (P2, 300), (V6, 300)],
            [f"update {P1} 30", f"update {P2} 30", f"update {V6} 30"],
            "lowered 30",
        ),
        # a record whose TTL the provider did not say is left alone
        ({P1: U, P2: D, V6: U}, [(P1, 300), (V6, None)], [f"update {P1} 30"], "lowered 30"),
    ],
)
def test_ttl_rule(
    decisions: Mapping[str, State],
    present: list[tuple[str, int | None]],
    changes: list[str],
    rule: str,
) -> None:
    assert ttl_summary(decisions, present) == (changes, rule)


def test_ttl_is_not_managed_without_degraded_ttl() -> None:
    spec = replace(TTL_SPEC, degraded_ttl=None)
    assert ttl_summary({P1: U, P2: D, V6: U}, [(P1, 300), (V6, 60)], spec) == (
        [],
        "",
    )


def test_held_records_get_the_lowered_ttl() -> None:
    p = plan_names(
        [TTL_SPEC], {P1: U, P2: D, V6: U}, {WWW: [rec(P1), rec(P2), rec(V6, 30)]}, held=(P2,)
    )
    assert [(c.action, c.record.content, c.record.ttl) for c in p.changes] == [
        ("update", P1, 30),
        ("update", P2, 30),
    ]


def test_ttl_update_reasons_and_ids() -> None:
    record = Record(WWW, "A", P1, ttl=300, id="cf-1")
    p = plan_names([TTL_SPEC], {P1: U, P2: D, V6: U}, {WWW: [record, rec(V6, 30)]})
    [change] = p.changes
    assert change.record.id == "cf-1"  # the provider's id is kept for the update
    assert change.reason == f"TTL 300 -> 30: {P2} is down"


def test_explanations_name_every_family_and_pool() -> None:
    spec = NameSpec(WWW, ((P1, V6), (B1,)), ("eu", "us"), ttl=300, degraded_ttl=30)
    p = plan_names([spec], {P1: D, V6: U, B1: U}, {WWW: []})
    explanation = p.explain(WWW)
    assert explanation is not None
    assert [(f.type, f.rule, f.pool, f.because) for f in explanation.families] == [
        ("A", "backup", "us", "no address of eu is up; us serves"),
        ("AAAA", "primary", "eu", "an address of eu is up"),
    ]
    assert explanation.ttl is not None
    assert (explanation.ttl.rule, explanation.ttl.because) == ("lowered", f"{P1} is down")
    assert p.explain("other.example.com") is None


async def test_the_reconciler_empties_a_fail_closed_name_and_reports_it() -> None:
    """End to end on the memory provider: every address down under fail-closed empties
    the name (the guard admits it), the case is reported once each way, and the name is
    restored when an address is up again."""
    spec = NameSpec(WWW, ((P1, P2),), ("eu",), ttl=300, all_down="fail-closed")
    provider = MemoryProvider(dry_run=False, audit=AuditLog(), records=[rec(P1), rec(P2)])
    decisions = {P1: D, P2: D}
    seen: list[tuple[str, bool]] = []
    reconciler = Reconciler(
        provider,
        names=[],
        addresses=[],
        specs=[spec],
        decisions=decisions,
        ttl=300,
        proxied=None,
        resync_interval=60.0,
        on_fail_closed=lambda case, engaged: seen.append((" ".join(case.down), engaged)),
    )
    assert await reconciler.reconcile_once() and reconciler.converged
    assert provider.store == {}
    assert [e["reason"] for e in provider.audit.recent] == [
        f"fail-closed: every address of {WWW} (A) is down; withdrawing {a} (all_down = fail-closed)"
        for a in (P1, P2)
    ]
    assert await reconciler.reconcile_once()
    assert seen == [(f"{P1} {P2}", True)]
    [explanation] = reconciler.explanations
    assert [f.rule for f in explanation.families] == ["fail-closed"]
    decisions[P2] = U
    assert await reconciler.reconcile_once()
    assert seen == [(f"{P1} {P2}", True), (f"{P1} {P2}", False)]
    assert set(provider.store) == {(WWW, "A", P2)}
