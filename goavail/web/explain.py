"""Why a name has exactly its records now: the ``/api/explain?name=`` document (pure).

Built from a :class:`goavail.web.snapshot.Snapshot` alone (no I/O, no clock reads:
times come from the snapshot), so it may run in a worker thread; ``goavail explain
NAME`` prints it (:mod:`goavail.explain`). It follows the pipeline of
docs/decisions.md for the one name, address by address::

    checks (fall/rise, last results) -> own verdict -> gates (damping, failback)
      -> announced verdict -> peers' votes (cluster) -> decision -> override
      -> effective -> brake -> planner rule -> planned answer -> served answer

Shape (times RFC 3339 UTC text, durations float seconds, states ``"up"``/``"down"``/
``"unknown"``)::

    {
      "name": str, "generated_at": str, "node": str, "mode": "single"|"cluster",
      "dry_run": bool, "min_peers_agree": int,
      "summary": [str],                # the short paragraph, one sentence per item
      "pools": [{"name", "role": "primary"|"backup", "priority", "addresses": [str]}],
      "providers": [{
          "provider": str, "converged": bool, "read_failed": bool,
          "current": [{"type", "address", "ttl", "managed"}],   # as last read
          "planned": [{"type", "address"}],      # current with the pending changes made
          "pending": [{"action", "type", "address", "reason"}],
          "families": [{"type", "rule", "pool", "because"}],     # the planner's rule
          "ttl": null | {"rule", "ttl", "because"},
          "served": [...] }],          # only with verify: per family, planned vs. served
                                       # per authoritative server (key_document)
      "addresses": [{                  # every address of the name, in priority order
          "address", "type", "pools": [str],        # the name's pools that hold it
          "checks": [{"id", "what", "fall", "rise", "state", "successes", "failures",
                      "last": null | {"ok", "rtt_seconds", "error"}}],
          "own": state, "since": str,               # the checks' verdict (worst of)
          "announced": state,                        # after the gates
          "damping": {"penalty", "suppressed", "reuse_at"},
          "failback": {"setting", "gate", "until", "released_by"},
          "gates": str,                              # one sentence
          "votes": null | {node: state | null},      # cluster: each live peer's vote
          "quorum": null | {"needed", "agreeing", "met", "missing": [node]},
          "decision": state, "decided": str,         # one sentence
          "override": {"mode", "local": null | {...}, "peers": {node: mode}},
          "effective": state,
          "brake": {"held": bool, "groups": [str]},
          "answer": [{"provider", "in_dns", "planned", "why"}]}]
    }

Every free text that could come from outside (probe errors, override reasons) goes
through :data:`goavail.logs.REDACTOR`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from goavail.checks.base import ProbeResult
from goavail.checks.multi import describe_check
from goavail.config import CheckSection
from goavail.decision import Override
from goavail.dns.model import (
    Change,
    Explanation,
    FamilyChoice,
    Record,
    normalize_name,
    record_type_for,
)
from goavail.dns.plan import NameSpec
from goavail.health import Health, State
from goavail.logs import REDACTOR
from goavail.web.propagation import name_propagation
from goavail.web.snapshot import ProviderView, Snapshot
from goavail.web.status import gate_fields, override_in_force, quorum_met, rfc3339


def spec_of(snap: Snapshot, name: str) -> NameSpec | None:
    """The spec of ``name`` (any spelling: normalized first), or None when it is not
    a managed name. Without a publication, one pool of every target."""
    name = normalize_name(name)
    if snap.publication is None:
        if name not in snap.names:
            return None
        return NameSpec(name, (tuple(snap.addresses),), ("targets",))
    return next((s for s in snap.publication.specs if s.name == name), None)


def _redact(text: str | None) -> str | None:
    return None if text is None else REDACTOR.redact(text)


def _last(result: ProbeResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"ok": result.ok, "rtt_seconds": result.rtt, "error": _redact(result.error)}


def _thresholds(snap: Snapshot, section: CheckSection, address: str) -> tuple[int | None, ...]:
    if snap.assignment is not None and section.fall is not None and section.rise is not None:
        return snap.assignment.thresholds(section, address)
    return section.fall, section.rise


def _checks(snap: Snapshot, address: str, health: Health, last: ProbeResult | None) -> list[Any]:
    """Every check that judges ``address``: what it does, its thresholds, its state and
    its last result (with ``--type``: the one synthesized check, the target's own)."""
    sections = {s.id: s for s in snap.check_sections}
    if snap.checks:
        judged = [
            (check_id, by_target[address], results.get(address))
            for check_id, by_target, results in snap.checks
            if address in by_target
        ]
    else:
        judged = [(s.id, health, last) for s in snap.check_sections[:1]]
    shown = []
    for check_id, h, result in judged:
        section = sections.get(check_id)
        fall, rise = _thresholds(snap, section, address) if section else (None, None)
        shown.append(
            {
                "id": check_id,
                "what": describe_check(section) if section else "",
                "fall": fall,
                "rise": rise,
                "state": h.state.value,
                "successes": h.successes,
                "failures": h.failures,
                "last": _last(result),
            }
        )
    return shown


def _gate_sentence(address: str, own: State, fields: dict[str, Any]) -> str:
    damping, failback = fields["damping"], fields["failback"]
    announced = fields["announced"]
    if damping["suppressed"]:
        return (
            f"flap damping suppresses it (penalty {damping['penalty']:g}): announced down "
            f"until the penalty decays (reuse at {damping['reuse_at']})"
        )
    if failback["gate"] == "waiting":
        return (
            f"recovered, but failback = {failback['setting']}: announced down until "
            f"{failback['until']}"
        )
    if failback["gate"] == "operator":
        return (
            "recovered, but failback = manual: announced down until an operator releases "
            f"it (goavail failback {address})"
        )
    extra = f" (damping penalty {damping['penalty']:g})" if damping["penalty"] else ""
    if announced == own.value:
        return f"gates open: announced as checked ({announced}){extra}"
    return f"announced {announced} (checks say {own.value}){extra}"


def _votes(snap: Snapshot, address: str) -> tuple[dict[str, str | None] | None, Any]:
    """Cluster mode: each live peer's vote (None: it has sent none for ``address``) and
    the quorum; ``(None, None)`` in single-node mode."""
    if snap.cluster is None:
        return None, None
    nodes = sorted(set(snap.cluster.live) | set(snap.peers))
    votes: dict[str, str | None] = {}
    for node in nodes:
        vote = snap.peers.get(node, {}).get(address)
        votes[node] = None if vote is None else vote.value
    local = snap.local.get(address, State.UNKNOWN)
    agreeing = sum(1 for v in votes.values() if v == local.value and local is not State.UNKNOWN)
    quorum = {
        "needed": snap.min_peers_agree,
        "agreeing": agreeing,
        "met": quorum_met(snap, address),
        "missing": [node for node, v in votes.items() if v is None],
    }
    return votes, quorum


def _decided(
    snap: Snapshot, address: str, override: Override, quorum: dict[str, Any] | None
) -> str:
    local = snap.local.get(address, State.UNKNOWN)
    decision = snap.decisions.get(address, State.UNKNOWN)
    effective = snap.effective.get(address, State.UNKNOWN)
    if override is not Override.AUTO:
        return f"override {override.value} in force: DNS reflects {effective.value}"
    if local is State.UNKNOWN:
        return "no verdict announced yet: nothing is decided"
    if quorum is None:
        return f"single node: this agent's announced verdict is the decision ({decision.value})"
    missing = quorum["missing"]
    gap = f"; no vote yet from {', '.join(missing)}" if missing else ""
    if quorum["met"]:
        return (
            f"{quorum['agreeing']} live peer(s) share this agent's verdict {local.value} "
            f"(min_peers_agree = {quorum['needed']}): decided {decision.value}{gap}"
        )
    return (
        f"only {quorum['agreeing']} live peer(s) share this agent's verdict {local.value} "
        f"(min_peers_agree = {quorum['needed']}{gap}): the decision stays {decision.value}"
    )


def _planned(records: Sequence[Record], changes: Sequence[Change], managed: set[str]) -> set[Any]:
    """``(type, address)`` of the name's managed records once ``changes`` are made."""
    keys = {(r.type, r.content) for r in records if r.content in managed}
    for change in changes:
        key = (change.record.type, change.record.content)
        if change.action == "create":
            keys.add(key)
        elif change.action == "delete":
            keys.discard(key)
    return keys


def why(
    spec: NameSpec,
    address: str,
    choice: FamilyChoice | None,
    effective: State,
    planned: bool,
    held: bool,
    override: Override,
) -> str:
    """One sentence: why ``address`` is (``planned``) or is not in ``spec``'s planned
    answer, from the planner's rule of its family (``choice``; None: not planned yet),
    its effective state, the brake (``held``) and the override in force."""
    if choice is None:
        return "not planned yet (no plan made for this provider)"
    names = [spec.pool_name(i) for i in range(len(spec.pools))]
    mine = [i for i, pool in enumerate(spec.pools) if address in pool]
    serving = names.index(choice.pool) if choice.pool in names else None
    in_serving = serving in mine
    if choice.rule == "unknown":
        return "nothing is known of the primary pool yet: the name is left as it is"
    if planned:
        if effective is State.UP:
            return f"up, in {choice.pool}, the pool that serves" if in_serving else "up"
        if effective is State.DOWN:
            if held:
                return "down, but the brake holds it in DNS (too many down at once)"
            if choice.rule == "fail-open":
                return (
                    f"down, kept by fail-open: no address of any pool is up, and "
                    f"{choice.pool} stays rather than emptying the name"
                )
            return "down, still in DNS"
        return "no decision yet: left in DNS as it is"
    if effective is State.DOWN:
        if choice.rule == "fail-closed":
            return "down; all_down = fail-closed withdraws every down address (NODATA)"
        if override is Override.DOWN:
            return "drained by an override down: withdrawn"
        rest = f"; {choice.pool} serves" if choice.pool and not in_serving else ""
        return f"down: withdrawn{rest}"
    if effective is State.UNKNOWN:
        return "no decision yet: not added until it is known"
    if not in_serving and serving is not None:
        if mine and min(mine) > serving:
            return f"up, but {names[min(mine)]} is a backup and {choice.pool}, before it, serves"
        return f"up, but {choice.pool} serves"
    return "up, not in the plan"


def _family(explanation: Explanation | None, rtype: str) -> FamilyChoice | None:
    if explanation is None:
        return None
    return next((f for f in explanation.families if f.type == rtype), None)


def _provider(
    snap: Snapshot, view: ProviderView, spec: NameSpec
) -> tuple[dict[str, Any], set[Any], Explanation | None]:
    name = spec.name
    managed = set(spec.addresses)
    records = sorted(view.current.get(name, []), key=lambda r: (r.type, r.content))
    changes = [c for c in view.pending if c.record.name == name]
    planned = _planned(records, changes, managed)
    explanation = next((e for e in view.explanations if e.name == name), None)
    doc: dict[str, Any] = {
        "provider": view.name,
        "converged": view.converged,
        "read_failed": view.read_failed,
        "current": [
            {"type": r.type, "address": r.content, "ttl": r.ttl, "managed": r.content in managed}
            for r in records
        ],
        "planned": [{"type": t, "address": a} for t, a in sorted(planned)],
        "pending": [
            {
                "action": c.action,
                "type": c.record.type,
                "address": c.record.content,
                "reason": c.reason,
            }
            for c in changes
        ],
        "families": []
        if explanation is None
        else [
            {"type": f.type, "rule": f.rule, "pool": f.pool, "because": f.because}
            for f in explanation.families
        ],
        "ttl": None
        if explanation is None or explanation.ttl is None
        else {
            "rule": explanation.ttl.rule,
            "ttl": explanation.ttl.ttl,
            "because": explanation.ttl.because,
        },
    }
    if snap.propagation:
        doc["served"] = [
            key
            for key in name_propagation(snap.propagation, name, snap.monotonic)
            if key["provider"] == view.name
        ]
    return doc, planned, explanation


def _publishing(snap: Snapshot, spec: NameSpec) -> list[tuple[ProviderView, NameSpec]]:
    """The providers that publish ``spec``'s name, each with its own spec of it."""
    found = []
    for view in snap.dns_providers:
        if snap.publication is None:
            found.append((view, spec))
            continue
        mine = next((s for s in snap.publication.specs_for(view.name) if s.name == spec.name), None)
        if mine is not None:
            found.append((view, mine))
    return found


def _summary(snap: Snapshot, providers: list[dict[str, Any]], rows: list[Any]) -> list[str]:
    said: list[str] = []
    several = len(providers) > 1
    for p in providers:
        where = f"{p['provider']}: " if several else ""
        if not p["families"]:
            said.append(f"{where}no plan made yet for this name.")
        for f in p["families"]:
            planned = [r["address"] for r in p["planned"] if r["type"] == f["type"]]
            answer = ", ".join(planned) if planned else "nothing (NODATA)"
            rule = f"{where}{f['type']}: {f['because']} (rule {f['rule']})"
            said.append(f"{rule}; planned: {answer}.")
        if p["ttl"] is not None:
            said.append(f"{where}TTL: {p['ttl']['because']}.")
        if p["pending"]:
            dry = " (dry-run: goavail makes no change)" if snap.dry_run else ""
            said.append(
                f"{where}DNS does not match the plan yet: {len(p['pending'])} change(s) "
                f"pending{dry}."
            )
        for key in p.get("served", ()):
            if key["state"] != "propagated":
                said.append(
                    f"{where}{key['type']}: not served everywhere yet ({key['state']}; "
                    f"behind: {', '.join(key['behind'])})."
                )
    down = [r for r in rows if r["effective"] == "down"]
    for r in down:
        failing = [c for c in r["checks"] if c["state"] == "down"]
        because = "; ".join(
            f"check {c['id']} failed {c['failures']} time(s) in a row"
            + (f" ({c['last']['error']})" if c["last"] and c["last"]["error"] else "")
            for c in failing
        )
        cause = because or r["gates"] if r["override"]["mode"] == "auto" else r["decided"]
        said.append(f"{r['address']} is down: {cause}.")
    return said


def explain_document(snap: Snapshot, name: str) -> dict[str, Any] | None:
    """The explanation of ``name`` (see the module docstring for its shape), or None
    when ``name`` is not a managed name of the run.

    Costs O(addresses of the name x checks) plus one pass over each provider's pending
    changes; the rest of the fleet is not read.
    """
    spec = spec_of(snap, name)
    if spec is None:
        return None
    rows_by_address = {row[0]: row for row in snap.raw_targets}
    lanes = _publishing(snap, spec)
    built = [_provider(snap, view, mine) for view, mine in lanes]
    providers = [doc for doc, _, _ in built]
    engaged = snap.brake.engaged
    addresses = []
    for address in spec.addresses:
        _, health, last, since = rows_by_address.get(address, (address, Health(), None, 0.0))
        fields = gate_fields(snap, address, health.state)
        votes, quorum = _votes(snap, address)
        override = override_in_force(snap, address)
        effective = snap.effective.get(address, State.UNKNOWN)
        held = address in snap.brake.held
        own = snap.overrides.get(address)
        rtype = record_type_for(address)
        answer = []
        for (view, mine), (doc, planned, explanation) in zip(lanes, built, strict=True):
            in_dns = any(r["address"] == address for r in doc["current"])
            is_planned = (rtype, address) in planned
            choice = _family(explanation, rtype)
            reason = why(mine, address, choice, effective, is_planned, held, override)
            if health.state is State.UP and fields["announced"] == "down" and not is_planned:
                reason += " (the checks say up; its gates hold it down)"
            answer.append(
                {
                    "provider": view.name,
                    "in_dns": in_dns,
                    "planned": is_planned,
                    "why": reason,
                }
            )
        entry = own.as_dict() if own else None
        if entry is not None:
            entry["reason"] = REDACTOR.redact(entry["reason"])
        addresses.append(
            {
                "address": address,
                "type": rtype,
                "pools": [spec.pool_name(i) for i, p in enumerate(spec.pools) if address in p],
                "checks": _checks(snap, address, health, last),
                "own": health.state.value,
                "since": rfc3339(since),
                **fields,
                "gates": _gate_sentence(address, health.state, fields),
                "votes": votes,
                "quorum": quorum,
                "decision": snap.decisions.get(address, State.UNKNOWN).value,
                "decided": _decided(snap, address, override, quorum),
                "override": {
                    "mode": override.value,
                    "local": entry,
                    "peers": {
                        node: held_[address].value
                        for node, held_ in sorted(snap.peer_overrides.items())
                        if address in held_
                    },
                },
                "effective": effective.value,
                "brake": {
                    "held": held,
                    "groups": [e.group for e in engaged if address in e.held],
                },
                "answer": answer,
            }
        )
    return {
        "name": spec.name,
        "generated_at": rfc3339(snap.wall),
        "node": snap.node,
        "mode": "cluster" if snap.cluster is not None else "single",
        "dry_run": snap.dry_run,
        "min_peers_agree": snap.min_peers_agree,
        "summary": _summary(snap, providers, addresses),
        "pools": [
            {
                "name": spec.pool_name(i),
                "role": "primary" if i == 0 else "backup",
                "priority": i,
                "addresses": list(pool),
            }
            for i, pool in enumerate(spec.pools)
        ],
        "providers": providers,
        "addresses": addresses,
    }


__all__ = ["explain_document", "spec_of", "why"]
