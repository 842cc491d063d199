"""The ``/api/status`` document: everything the status page shows, as JSON (pure).

Built from a :class:`goavail.web.snapshot.Snapshot` (no I/O, no clock reads: times
come from the snapshot), so it may run in a worker thread. Shape (times are RFC 3339
UTC text, durations float seconds, states ``"up"``/``"down"``/``"unknown"``)::

    {
      "generated_at": str,
      "agent": {"node", "version", "started_at", "uptime_seconds", "config_file",
                "provider", "probe", "dry_run", "mode": "single"|"cluster", "admin_api"},
      "config": {"interval", "timeout", "failure_threshold", "rise_threshold",
                 "resync_interval", "min_peers_agree", "overrides_file",
                 "reloads": {"applied", "rejected", "failed"},
                 "last_reload": null | {"time", "result", "problems": [str]}},
      "summary": {"targets", "up", "down", "unknown", "overridden", "pending_changes",
                  "names", "names_differing", "held", "suppressed",
                  "awaiting_failback"},                     # the whole fleet
      "warnings": [{"kind", "message"}],    # kinds: dry-run, down, fail-open, fail-closed,
                                             # brake, quorum, dns, config, override,
                                             # gossip, damping, failback
      "listing": {"query": {"name", "pool", "state", "order", "page", "names_page",
                            "per_page"},
                  "targets": {"total", "matched", "page", "pages", "first", "last"},
                  "names": {...the same},
                  "pools": [str]},           # every configured pool, sorted
      "targets": [{"address", "state", "successes", "failures", "since",
                   "since_seconds", "last_rtt_seconds", "last_error", "check": null | str,
                   "checks": [{"id", "state", "successes", "failures",
                               "last_rtt_seconds", "last_error"}],
                   "decision", "effective", "override": {"mode", "local": null |
                   {"mode", "reason", "since"}, "peers": {node: mode}},
                   "votes": {node: state}, "quorum_met": bool | null,
                   "damping": {"penalty", "suppressed", "reuse_at": null | time},
                   "failback": {"setting": "auto"|"after 5m"|"manual",
                                "gate": "open"|"waiting"|"operator",
                                "until": null | time, "released_by": str},
                   "announced": state,  # this agent's verdict after the gates
                   "pools": [str], "names": [str]}],   # one page (listing.targets)
      "overrides": [{"target", "mode", "reason", "since", "configured"}],
      "names": [{"name", "records": [{"type", "address", "managed"}],
                 "pending": [{"action", "type", "address", "reason"}],
                 "fail_open": [{"type", "kept": [str]}],
                 "pools": [{"name", "role": "primary"|"backup", "priority", "serving",
                            "addresses": [str], "up", "down", "unknown"}],
                 "serving": [pool name], "answer": "primary"|"backup"|"mixed"|
                 "fail-open"|"brake"|"none", "differs": bool, "marks": [str],
                 "propagation": [{"provider", "type",   # only with verify
                                  "state": "propagated"|"pending"|
                                  "lagging", "planned": [str], "since_seconds",
                                  "seconds", "behind": [server],
                                  "servers": {server: {"agrees", "served"}}}]}],
      "dns": {"provider", "dry_run", "converged", "pending_changes", "retries", "passes",
              "failed_passes", "last_error", "read_seconds_ago",
              "providers": [{"name", "names", "converged", "pending_changes", "retries",
                             "passes", "failed_passes", "last_error", "read_failed",
                             "read_seconds_ago"}],   # each provider of the run; the
                                                     # fields above sum them up
              "propagation": [{"provider", "servers": [str], "limit", "problem",
                               "answers", "answers_behind", "lagging": [{"server",
                               "names": [str], "behind_seconds", "detail"}],
                               "propagations", "propagation_seconds_sum"}]},
                                                     # only with verify
      "cluster": null | {"node", "event", "min_peers_agree", "connected", "quorum_unmet",
                         "encrypted", "live_peers": [str], "members": {node: status},
                         "gossip": {counter: int}},
      "audit": [record, ...]                 # newest first, at most 50
    }

``targets`` and ``names`` hold the page the query asks for
(:mod:`goavail.web.listing`: filters, order, pages; ``listing`` says which and how many
there are); by default every target in configuration order and every name by name.
A pool's ``up``/``down``/``unknown`` count what DNS should reflect (the decision, or the
override in force); ``serving`` pools have an address in DNS now; a name ``differs``
when its answer is not its primary pool's alone (``marks`` say how: a backup serving,
fail-open, the brake holding a down address).

With ``[[checks]]``, a target's ``state`` is the worst of its checks' and
``successes``, ``failures``, ``last_rtt_seconds`` and ``last_error`` are those of the
check that decides it, named by ``check`` (see :func:`deciding_check`); ``checks``
lists the own state of every check that judges the target (its pools' checks, see
:mod:`goavail.judges`). Without checks, ``check`` is null and ``checks`` empty.

Every free text that could come from outside (errors, audit records) goes through
:data:`goavail.logs.REDACTOR`, so a secret never reaches an HTTP answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from goavail.checks.base import ProbeResult
from goavail.decision import Override, backed, combine_overrides
from goavail.dns.model import Change, FailOpen
from goavail.dns.plan import NameSpec
from goavail.gates import Gate
from goavail.health import Health, State
from goavail.logs import REDACTOR
from goavail.overrides import OverrideEntry
from goavail.web.listing import (
    API_DEFAULTS,
    Index,
    NameFact,
    Page,
    Query,
    TargetFact,
    answer_of,
    build_index,
    group_fact,
    name_fact,
    paginate,
    select_names,
    select_targets,
)
from goavail.web.propagation import name_propagation, propagation_document, propagation_warnings
from goavail.web.snapshot import Snapshot, TargetRow


def _providers(snap: Snapshot) -> list[dict[str, Any]]:
    """Each provider of the run and its reconciler's state (``/api/status`` ``dns``)."""
    return [
        {
            "name": v.name,
            "names": v.names,
            "converged": v.converged,
            "pending_changes": len(v.pending),
            "retries": v.retries,
            "passes": v.passes,
            "failed_passes": v.failed_passes,
            "last_error": _redact(v.last_error),
            "read_failed": v.read_failed,
            "read_seconds_ago": None if v.read_at is None else max(0.0, snap.monotonic - v.read_at),
        }
        for v in snap.dns_providers
    ]


def floating_ips(snap: Snapshot) -> list[dict[str, Any]]:
    """Each ``[[floating_ips]]`` group: servers, floating IPs (current and planned
    target) and the reconciler's state (``/api/status`` ``floating_ips``)."""
    return [
        {
            "id": g.id,
            "dry_run": g.dry_run,
            "converged": g.converged,
            "pending": list(g.pending),
            "all_down": g.all_down,
            "servers": [
                {"name": n, "address": a, "location": loc, "state": str(state)}
                for n, a, loc, state in g.servers
            ],
            "floating_ips": [
                {
                    "name": ip.name,
                    "address": ip.address,
                    "location": ip.location,
                    "target": ip.current,
                    "planned": ip.planned,
                }
                for ip in g.ips
            ],
            "moves": g.moves,
            "failed_moves": g.failed_moves,
            "held": g.held,
            "passes": g.passes,
            "failed_passes": g.failed_passes,
            "last_error": _redact(g.last_error),
            "read_seconds_ago": None if g.read_at is None else max(0.0, snap.monotonic - g.read_at),
        }
        for g in snap.floating_ips
    ]


def rfc3339(seconds: float) -> str:
    """Unix seconds as RFC 3339 UTC text to the second: ``"2026-11-21T03:00:00Z"``."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _redact(text: str | None) -> str | None:
    return None if text is None else REDACTOR.redact(text)


def _entry(entry: OverrideEntry) -> dict[str, str]:
    shown = entry.as_dict()
    shown["reason"] = REDACTOR.redact(shown["reason"])
    return shown


def override_in_force(snap: Snapshot, target: str) -> Override:
    """The combined override of ``target`` (this agent's and its live peers')."""
    own = snap.overrides.get(target)
    held = [own.mode if own else Override.AUTO]
    held.extend(h.get(target, Override.AUTO) for h in snap.peer_overrides.values())
    return combine_overrides(held)


def quorum_met(snap: Snapshot, target: str) -> bool | None:
    """Cluster mode: whether this agent's own verdict of ``target`` is shared by at least
    ``min_peers_agree`` live peers (always True under an override). None in single-node
    mode or while the verdict is unknown."""
    if snap.cluster is None:
        return None
    local = snap.local.get(target, State.UNKNOWN)
    if local is State.UNKNOWN:
        return None
    if override_in_force(snap, target) is not Override.AUTO:
        return True
    votes = [v[target] for v in snap.peers.values() if target in v]
    return backed(local, local, votes, snap.min_peers_agree)


def _result_fields(health: Health, last: ProbeResult | None) -> dict[str, Any]:
    return {
        "successes": health.successes,
        "failures": health.failures,
        "last_rtt_seconds": last.rtt if last is not None and last.ok else None,
        "last_error": _redact(last.error) if last is not None and not last.ok else None,
    }


def _check_entry(check_id: str, health: Health, last: ProbeResult | None) -> dict[str, Any]:
    return {"id": check_id, "state": health.state.value, **_result_fields(health, last)}


def deciding_check(state: str, checks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The check whose counters and last error stand for the target's (``[[checks]]``).

    A target is as bad as its worst check (:func:`goavail.health.worst_of`), so the
    check that decides is one in the target's own ``state``; among those, the one with
    the most consecutive failures (the first in configuration order on a tie). A DOWN
    target thus shows why it is down, and an UP one the check closest to going down.

    Args:
        state: the target's state (``"up"``, ``"down"``, ``"unknown"``).
        checks: the target's per-check entries (``"state"``, ``"failures"``, ...), in
            configuration order.

    Returns:
        The chosen entry; the first entry when none is in ``state`` (a reload between
        a check's change and the target's); None without checks.
    """
    same = [c for c in checks if c["state"] == state] or checks[:1]
    return max(same, key=lambda c: c["failures"], default=None)


def _target(snap: Snapshot, row: TargetRow, index: Index) -> dict[str, Any]:
    address = row.address
    state = row.health.state.value
    counters = _result_fields(row.health, row.last)
    checks = [
        _check_entry(check_id, health.get(address, Health()), last.get(address))
        for check_id, health, last in snap.checks
        if address in health  # the checks that judge this target (its pools')
    ]
    decider = deciding_check(state, checks)
    if decider is not None:
        counters = {key: decider[key] for key in counters}
    own = snap.overrides.get(address)
    peers_held = {
        node: held[address].value
        for node, held in sorted(snap.peer_overrides.items())
        if address in held
    }
    votes = {
        node: votes[address].value for node, votes in sorted(snap.peers.items()) if address in votes
    }
    return {
        "address": address,
        "state": state,
        "successes": counters["successes"],
        "failures": counters["failures"],
        "since": rfc3339(row.since),
        "since_seconds": max(0.0, snap.wall - row.since),
        "last_rtt_seconds": counters["last_rtt_seconds"],
        "last_error": counters["last_error"],
        "check": None if decider is None else decider["id"],
        "checks": checks,
        "decision": snap.decisions.get(address, State.UNKNOWN).value,
        "effective": snap.effective.get(address, State.UNKNOWN).value,
        "override": {
            "mode": override_in_force(snap, address).value,
            "local": _entry(own) if own else None,
            "peers": peers_held,
        },
        "votes": votes,
        "quorum_met": quorum_met(snap, address),
        **gate_fields(snap, address, row.health.state),
        "pools": list(index.pools_of.get(address, ())),
        "names": list(index.names_of.get(address, ())),
    }


def gate_fields(snap: Snapshot, address: str, raw: State) -> dict[str, Any]:
    """A target's ``damping``, ``failback`` and ``announced`` fields (see
    :mod:`goavail.gates`; monotonic deadlines shown as wall-clock times)."""
    view = snap.gates.get(address)
    offset = snap.wall - snap.monotonic
    if view is None:
        setting = snap.failback.get(address, snap.failback_default)
        return {
            "damping": {"penalty": 0.0, "suppressed": False, "reuse_at": None},
            "failback": {"setting": str(setting), "gate": "open", "until": None, "released_by": ""},
            "announced": raw.value,
        }
    return {
        "damping": {
            "penalty": round(view.penalty, 1),
            "suppressed": view.suppressed,
            "reuse_at": None if view.reuse_at is None else rfc3339(view.reuse_at + offset),
        },
        "failback": {
            "setting": view.failback,
            "gate": view.gate.value,
            "until": None if view.until is None else rfc3339(view.until + offset),
            "released_by": view.released_by,
        },
        "announced": view.published.value,
    }


def _gate_warnings(snap: Snapshot, by_address: dict[str, TargetFact]) -> list[dict[str, str]]:
    suppressed = sorted(t for t, v in snap.gates.items() if v.suppressed)
    operator = sorted(
        t
        for t, v in snap.gates.items()
        if v.gate is Gate.OPERATOR
        and not v.suppressed
        and t in by_address
        and by_address[t].state == "up"
    )
    warnings = []
    if suppressed:
        warnings.append(
            {
                "kind": "damping",
                "message": f"Flap damping keeps {len(suppressed)} flapping target(s) withdrawn "
                f"until their penalty decays: {_few(suppressed)}.",
            }
        )
    if operator:
        warnings.append(
            {
                "kind": "failback",
                "message": f"{len(operator)} recovered target(s) wait for an operator "
                f"(failback = manual: goavail failback TARGET): {_few(operator)}.",
            }
        )
    return warnings


def _few(items: list[str], shown: int = 10) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _name(
    snap: Snapshot,
    fact: NameFact,
    configured: set[str],
    pending: dict[str, list[Change]],
    fail_open: dict[str, list[FailOpen]],
) -> dict[str, Any]:
    spec = fact.spec
    name = spec.name
    records = sorted(snap.current.get(name, []), key=lambda r: (r.type, r.content))
    serving = set(fact.answer.serving)
    return {
        "name": name,
        "records": [
            {"type": r.type, "address": r.content, "managed": r.content in configured}
            for r in records
        ],
        "pending": [
            {
                "action": c.action,
                "type": c.record.type,
                "address": c.record.content,
                "reason": c.reason,
            }
            for c in pending.get(name, ())
        ],
        "fail_open": [{"type": f.type, "kept": list(f.kept)} for f in fail_open.get(name, ())],
        "pools": [_pool(snap, spec, i, i in serving) for i in range(len(spec.pools))],
        "serving": [spec.pool_name(i) for i in fact.answer.serving],
        "answer": fact.answer.kind,
        "differs": fact.answer.differs,
        "marks": list(fact.answer.marks),
        **(
            {"propagation": name_propagation(snap.propagation, name, snap.monotonic)}
            if snap.propagation
            else {}
        ),
    }


def _pool(snap: Snapshot, spec: NameSpec, i: int, serving: bool) -> dict[str, Any]:
    addresses = spec.pools[i]
    counts = {state.value: 0 for state in State}
    for address in addresses:
        counts[snap.effective.get(address, State.UNKNOWN).value] += 1
    return {
        "name": spec.pool_name(i),
        "role": "primary" if i == 0 else "backup",
        "priority": i,
        "serving": serving,
        "addresses": list(addresses),
        **counts,
    }


def _warnings(
    snap: Snapshot, facts: list[TargetFact], configured: set[str]
) -> list[dict[str, str]]:
    warnings: list[dict[str, str]] = []
    if snap.dry_run:
        warnings.append(
            {
                "kind": "dry-run",
                "message": "DRY-RUN: goavail makes no DNS change; it only logs and audits "
                "what it would do (start it with --no-dry-run to act).",
            }
        )
    for case in snap.fail_open:
        warnings.append(
            {
                "kind": "fail-open",
                "message": f"FAIL-OPEN for {case.name} {case.type}: every configured address "
                f"is down; all are kept in DNS ({', '.join(case.kept)}) rather than emptying "
                "the name.",
            }
        )
    for closed in snap.fail_closed:
        warnings.append(
            {
                "kind": "fail-closed",
                "message": f"FAIL-CLOSED for {closed.name} {closed.type}: every configured "
                f"address is down ({', '.join(closed.down)}) and its all_down policy is "
                f"fail-closed: all are withdrawn, the name answers NODATA for {closed.type}.",
            }
        )
    for engaged in snap.brake.engaged:
        warnings.append(
            {
                "kind": "brake",
                "message": f"BRAKE: {engaged.down} of {engaged.size} targets of {engaged.group} "
                f"are down at once (more than {engaged.allowed}); is this agent's own network "
                f"degraded? Held in DNS: {', '.join(engaged.held)}.",
            }
        )
    down = [f.address for f in facts if f.state == "down"]
    if down:
        warnings.append(
            {
                "kind": "down",
                "message": f"{len(down)} target(s) down as seen by this agent: "
                + ", ".join(down[:10])
                + (" ..." if len(down) > 10 else ""),
            }
        )
    cluster = snap.cluster
    if cluster is not None:
        if len(cluster.live) < snap.min_peers_agree:
            warnings.append(
                {
                    "kind": "quorum",
                    "message": f"QUORUM UNMET: {len(cluster.live)} live peer(s), "
                    f"min_peers_agree = {snap.min_peers_agree}: no DNS change can be made.",
                }
            )
        unmet = [f.address for f in facts if quorum_met(snap, f.address) is False]
        if unmet:
            warnings.append(
                {
                    "kind": "quorum",
                    "message": f"{len(unmet)} target(s) where fewer than "
                    f"{snap.min_peers_agree} peer(s) share this agent's verdict, so it is "
                    f"not acted on: {', '.join(unmet[:10])}" + (" ..." if len(unmet) > 10 else ""),
                }
            )
        if not cluster.connected:
            warnings.append(
                {"kind": "gossip", "message": "Not connected to Serf: verdicts are not gossiped."}
            )
        if cluster.plaintext:
            warnings.append(
                {
                    "kind": "gossip",
                    "message": "No crypto_key: verdicts travel in plaintext and can be forged.",
                }
            )
    warnings.extend(propagation_warnings(snap.propagation, snap.monotonic))
    if snap.retries:
        warnings.append(
            {
                "kind": "dns",
                "message": f"DNS not converged after {snap.retries} failed pass(es): "
                f"{_redact(snap.last_error)}",
            }
        )
    last = snap.last_reload
    if last is not None and last.result != "applied":
        warnings.append(
            {
                "kind": "config",
                "message": f"The last reload ({rfc3339(last.time)}) was {last.result}; "
                "goavail still runs the previous configuration.",
            }
        )
    for fact in facts:
        if not fact.overridden:
            continue
        address = fact.address
        holders = (["this agent"] if address in snap.overrides else []) + [
            f"peer {node}" for node, held in sorted(snap.peer_overrides.items()) if address in held
        ]
        warnings.append(
            {
                "kind": "override",
                "message": f"Override {override_in_force(snap, address).value} on {address} "
                f"(held by {', '.join(holders)}).",
            }
        )
    stray = sorted(set(snap.overrides) - configured)
    if stray:
        warnings.append(
            {
                "kind": "override",
                "message": "Overrides for addresses that are not targets (ignored): "
                + ", ".join(stray),
            }
        )
    return warnings


def _audit_record(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: (REDACTOR.redact(v) if isinstance(v, str) else v) for k, v in entry.items()}


def index_of(snap: Snapshot) -> Index:
    """The listing :class:`~goavail.web.listing.Index` of ``snap``'s configuration
    (without a publication: one pool of every target under every name)."""
    publication = snap.publication
    addresses = tuple(snap.addresses)
    if publication is None:
        spec = (addresses,)
        specs = [NameSpec(name, spec, ("targets",)) for name in snap.names]
        return build_index(specs, {"targets": addresses}, addresses)
    return build_index(publication.specs, publication.pools, addresses)


def target_facts(snap: Snapshot) -> list[TargetFact]:
    """Every target's :class:`~goavail.web.listing.TargetFact`, in configuration order
    (O(targets); the override in force is combined only where one is held)."""
    held_any = set(snap.overrides)
    for held in snap.peer_overrides.values():
        held_any.update(held)
    overridden = {a for a in held_any if override_in_force(snap, a) is not Override.AUTO}
    effective = snap.effective
    brake = snap.brake.held
    unknown = State.UNKNOWN
    return [
        TargetFact(
            address,
            health.state.value,
            effective.get(address, unknown).value,
            address in overridden,
            since,
            address in brake,
        )
        for address, health, _, since in snap.raw_targets
    ]


def _by_name(items: tuple[Any, ...], name: Any) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for item in items:
        grouped.setdefault(name(item), []).append(item)
    return grouped


def _listing(matched: Page, total: int) -> dict[str, Any]:
    return {
        "total": total,
        "matched": matched.matched,
        "page": matched.number,
        "pages": matched.pages,
        "first": matched.start + 1 if matched.stop > matched.start else 0,
        "last": matched.stop,
    }


def status_document(
    snap: Snapshot, query: Query = API_DEFAULTS, index: Index | None = None
) -> dict[str, Any]:
    """The ``/api/status`` document of ``snap`` (see the module docstring for its shape).

    Args:
        snap: the agent's state.
        query: filters, order and page (:mod:`goavail.web.listing`); the default lists
            every target in configuration order and every name, as ``/api/status``
            always did.
        index: the configuration's listing index (:class:`goavail.web.listing.IndexCache`
            keeps one); built here when None.

    Costs O(n log n) in targets and names; only the rows of the page are built in full.
    """
    config = snap.config
    if index is None:
        index = index_of(snap)
    configured = set(snap.addresses)
    facts = target_facts(snap)
    by_address = {f.address: f for f in facts}
    counts = {state.value: 0 for state in State}
    for f in facts:
        counts[f.state] += 1
    withdrawn = {f.address for f in facts if f.effective == "down"}
    pending = _by_name(snap.pending, lambda c: c.record.name)
    fail_open = _by_name(snap.fail_open, lambda f: f.name)
    current = snap.current
    held = snap.brake.held
    wall = snap.wall
    groups = {
        key: group_fact(addresses, by_address, wall) for key, addresses in index.groups.items()
    }
    names = []
    for spec in index.specs:
        keys = index.groups_of[spec.name]
        answer = answer_of(
            spec,
            current.get(spec.name, ()),
            [f.type for f in fail_open.get(spec.name, ())],
            held,
            withdrawn,
            [index.groups[key] for key in keys],
        )
        names.append(name_fact(spec, answer, [groups[key] for key in keys]))
    differs = {a for n in names if n.answer.differs for a in n.spec.addresses}
    chosen = select_targets(facts, index, query, wall, differs)
    target_page = paginate(len(chosen), query.page, query.per_page)
    rows = {row[0]: row for row in snap.raw_targets}
    targets = [
        _target(snap, TargetRow._make(rows[f.address]), index)
        for f in chosen[target_page.start : target_page.stop]
    ]
    chosen_names = select_names(names, query, wall)
    name_page = paginate(len(chosen_names), query.names_page, query.per_page)
    name_rows = [
        _name(snap, fact, configured, pending, fail_open)
        for fact in chosen_names[name_page.start : name_page.stop]
    ]
    last = snap.last_reload
    cluster = snap.cluster
    return {
        "generated_at": rfc3339(snap.wall),
        "agent": {
            "node": snap.node,
            "version": snap.version,
            "started_at": rfc3339(snap.started_at),
            "uptime_seconds": max(0.0, snap.wall - snap.started_at),
            "config_file": snap.config_path,
            "provider": snap.provider,
            "probe": snap.probe_kind,
            "dry_run": snap.dry_run,
            "mode": "cluster" if cluster is not None else "single",
            "admin_api": snap.admin_api,
        },
        "config": {
            "interval": config.interval,
            "timeout": config.timeout,
            "failure_threshold": config.failure_threshold,
            "rise_threshold": config.rise_threshold,
            "resync_interval": config.resync_interval,
            "min_peers_agree": snap.min_peers_agree,
            "overrides_file": str(config.overrides_file) if config.overrides_file else None,
            "reloads": {k: snap.reloads.get(k, 0) for k in ("applied", "rejected", "failed")},
            "last_reload": None
            if last is None
            else {
                "time": rfc3339(last.time),
                "result": last.result,
                "problems": [REDACTOR.redact(p) for p in last.problems],
            },
        },
        "summary": {
            "targets": len(facts),
            **counts,
            "overridden": sum(1 for f in facts if f.overridden),
            "pending_changes": len(snap.pending),
            "names": len(names),
            "names_differing": sum(1 for n in names if n.answer.differs),
            "held": len(held),
            "suppressed": snap.gate_counts[0],
            "awaiting_failback": snap.gate_counts[1],
        },
        "warnings": _warnings(snap, facts, configured) + _gate_warnings(snap, by_address),
        "listing": {
            "query": query.as_dict(),
            "targets": _listing(target_page, len(facts)),
            "names": _listing(name_page, len(names)),
            "pools": sorted(index.pools),
        },
        "targets": targets,
        "overrides": [
            {
                "target": target,
                **_entry(entry),
                "configured": target in configured,
            }
            for target, entry in sorted(snap.overrides.items())
        ],
        "names": name_rows,
        "dns": {
            "provider": snap.provider,
            "dry_run": snap.dry_run,
            "converged": snap.converged,
            "pending_changes": len(snap.pending),
            "retries": snap.retries,
            "passes": snap.passes,
            "failed_passes": snap.failed_passes,
            "last_error": _redact(snap.last_error),
            "read_seconds_ago": None
            if snap.read_at is None
            else max(0.0, snap.monotonic - snap.read_at),
            "providers": _providers(snap),
            **(
                {"propagation": propagation_document(snap.propagation, snap.monotonic)}
                if snap.propagation
                else {}
            ),
        },
        "floating_ips": floating_ips(snap),
        "cluster": None
        if cluster is None
        else {
            "node": snap.node,
            "event": cluster.event,
            "min_peers_agree": snap.min_peers_agree,
            "connected": cluster.connected,
            "quorum_unmet": len(cluster.live) < snap.min_peers_agree,
            "encrypted": not cluster.plaintext,
            "live_peers": sorted(cluster.live),
            "members": dict(sorted(cluster.member_status.items())),
            "gossip": dict(sorted(cluster.counters.items())),
        },
        "audit": [_audit_record(e) for e in reversed(snap.audit)],
    }
