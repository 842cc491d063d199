"""The name guard: a delete never leaves a managed name without a record (pure: no I/O).

The planner already refuses to empty a name (fail-open), but it plans as if
every change will succeed. Between the plan and DNS two things can break that
assumption:

* a create fails (a permanent Cloudflare 400, a rate limit that outlasts the
  pass, a timeout whose effect is unknown): the delete planned after it would
  remove the last address the name still has;
* cluster gating holds a create for another agent (this one is not the
  designated writer, or its own verdict does not back it) while the delete that
  the create was meant to replace is ready here.

:class:`NameGuard` follows, per name and address family, the set of managed
addresses *known* to be in DNS: those read at the start of the pass, plus those
whose create succeeded, minus those deleted — and minus those whose delete
failed, since a timed-out delete may still have landed. A delete is admitted
only while another known-present managed address of the same name and family
remains after it. It is the same rule as the planner's fail-open, applied to
the name as it really is rather than as planned. A create is always admitted.

Only managed records count (those whose content is a configured address): an
address goavail does not manage may be removed by someone else at any time, so
it is never what keeps a name answering.

The one exception is explicit: a name and family whose plan is **fail-closed**
(``all_down = "fail-closed"`` and every address down, see
:class:`~goavail.dns.model.FailClosed`) is listed in ``may_empty``, and its deletes
are admitted even when they take its last managed record. Every other name keeps
the rule above, faults or not. An ``update`` (a TTL change) never removes a
record, so it is always admitted and changes nothing the guard follows.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from goavail.dns.model import Change, Record, RecordType

_Slot = tuple[str, RecordType]


class NameGuard:
    """Known-present managed addresses per (name, family), and the delete rule.

    Args:
        current: name -> the records read at the start of the pass (every
            A/AAAA record of the name; others are ignored).
        managed: configured addresses in canonical text; only records whose
            content is one of them count.
        may_empty: the (name, family) pairs the plan empties on purpose (its
            fail-closed cases); their deletes are always admitted.

    Not thread-safe; one guard per apply. ``allows`` and ``settle`` are O(1).
    """

    __slots__ = ("_managed", "_may_empty", "_present")

    def __init__(
        self,
        current: Mapping[str, Sequence[Record]],
        managed: Collection[str],
        may_empty: Collection[_Slot] = (),
    ) -> None:
        self._managed = frozenset(managed)
        self._may_empty = frozenset(may_empty)
        self._present: dict[_Slot, set[str]] = {}
        for name, records in current.items():
            for record in records:
                if record.content in self._managed:
                    self._present.setdefault((name, record.type), set()).add(record.content)

    def present(self, name: str, family: RecordType) -> frozenset[str]:
        """The managed addresses of ``name``/``family`` known to be in DNS now."""
        return frozenset(self._present.get((name, family), ()))

    def allows(self, change: Change) -> bool:
        """True when ``change`` may go out now.

        A create or an update always may. A delete of a managed address may only
        when at least one other managed address of the same name and family is
        known to be present (a delete of an unmanaged record is not the guard's
        business, and the planner never plans one), or when its name and family
        are in ``may_empty`` (fail-closed).
        """
        record = change.record
        if change.action != "delete" or record.content not in self._managed:
            return True
        if (record.name, record.type) in self._may_empty:
            return True
        remaining = self._present.get((record.name, record.type), set()) - {record.content}
        return bool(remaining)

    def settle(self, change: Change, ok: bool) -> None:
        """Record the outcome of ``change`` (``ok``: the provider confirmed it).

        A confirmed create adds its address; a failed create adds nothing. A
        delete removes its address whatever the outcome: a failed delete may
        still have landed (a timeout after the server acted), and the guard
        must never count on a record that might be gone.
        """
        record = change.record
        if record.content not in self._managed or change.action == "update":
            return
        slot = (record.name, record.type)
        if change.action == "create":
            if ok:
                self._present.setdefault(slot, set()).add(record.content)
        else:
            self._present.get(slot, set()).discard(record.content)


def admissible(
    current: Mapping[str, Sequence[Record]],
    changes: Iterable[Change],
    managed: Collection[str],
    may_empty: Collection[_Slot] = (),
) -> tuple[tuple[Change, ...], tuple[Change, ...]]:
    """Split ``changes`` into those that may go out now and those that must wait.

    Simulates ``changes`` in order against ``current`` assuming each admitted
    change succeeds, and holds back every delete the :class:`NameGuard` refuses
    (it would leave its name and family with no managed record). Used to gate a
    pass's changes per name: when a create is held for another agent, the
    deletes it was meant to replace wait with it. ``may_empty`` as for
    :class:`NameGuard`.

    Returns:
        ``(admitted, waiting)``, each in the order of ``changes``.
    """
    changes = tuple(changes)
    if all(change.action != "delete" for change in changes):
        return changes, ()  # creates and updates always may (no guard to build: O(records))
    guard = NameGuard(current, managed, may_empty)
    admitted: list[Change] = []
    waiting: list[Change] = []
    for change in changes:
        if guard.allows(change):
            admitted.append(change)
            guard.settle(change, ok=True)
        else:
            waiting.append(change)
    return tuple(admitted), tuple(waiting)
