"""Notification events and message bodies (pure: no I/O, no clock reads).

An :class:`Event` is something an operator wants to hear about: a DNS change
made (or, in dry-run, one that would be made), fail-open engaged or released,
the cluster quorum unmet for too long (and restored), this agent's Serf node name
also used by another node (and resolved), the agent started or stopped. The
constructors below take the time as an argument; the notifier (an I/O edge)
reads the clock.

:func:`render` turns a batch of events (everything collected during one
coalescing window) into the JSON body of one message:

* ``slack`` / ``mattermost``: the incoming-webhook body ``{"text", "channel"?,
  "username"?}`` (https://api.slack.com/messaging/webhooks,
  https://developers.mattermost.com/integrate/webhooks/incoming/). The text
  lists at most :data:`MAX_LINES` events, then "... and N more".
* ``webhook``: ``{"agent", "version", "text", "dropped", "events": [...]}``
  with every event of the batch as ``{"kind", "time", ...fields}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from goavail.brake import BrakeResult
from goavail.dns.model import FailClosed, FailOpen
from goavail.dns.propagation import Lag

EventKind = Literal[
    "dns_change",
    "fail_open_engaged",
    "fail_open_released",
    "fail_closed_engaged",
    "fail_closed_released",
    "quorum_unmet",
    "quorum_restored",
    "name_conflict",
    "name_conflict_resolved",
    "agent_started",
    "agent_stopped",
    "brake_engaged",
    "brake_released",
    "target_suppressed",
    "target_reused",
    "failback_waiting",
    "failback_released",
    "propagation_lagging",
    "propagation_recovered",
]
SinkType = Literal["slack", "mattermost", "webhook"]

MAX_LINES = 20
"""Events listed in the text of one chat message; the rest are counted ("... and N more")."""

NOTIFIED_OUTCOMES = frozenset({"applied", "planned"})
"""Audit outcomes that make a ``dns_change`` event: a change made, or one dry-run would make.
("already-done" changed nothing; "error" is retried by the reconciler and logged.)"""


@dataclass(frozen=True, slots=True)
class Event:
    """One thing to notify.

    Attributes:
        kind: what happened (see :data:`EventKind`).
        time: when, RFC 3339 text in UTC (``"2026-01-02T03:04:05.678+00:00"``).
        fields: kind-specific JSON values (see docs/notifications.md).
    """

    kind: EventKind
    time: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """``{"kind", "time", **fields}``: an element of the webhook body's ``events``."""
        return {"kind": self.kind, "time": self.time, **self.fields}


def timestamp(moment: datetime) -> str:
    """RFC 3339 text in UTC with milliseconds, as in audit records."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def dns_change(audit: Mapping[str, Any]) -> Event | None:
    """The event for one audit record (see :class:`goavail.dns.audit.AuditLog`), or None.

    Only the outcomes in :data:`NOTIFIED_OUTCOMES` are notified. Fields:
    ``target`` (the address), ``name``, ``type``, ``action`` ("create"/"delete"),
    ``reason``, ``dry_run``, ``outcome`` ("applied"/"planned"), ``provider``.
    """
    if audit.get("outcome") not in NOTIFIED_OUTCOMES:
        return None
    return Event(
        "dns_change",
        str(audit["time"]),
        {
            "target": audit["address"],
            "name": audit["name"],
            "type": audit["type"],
            "action": audit["action"],
            "reason": audit["reason"],
            "dry_run": bool(audit["dry_run"]),
            "outcome": audit["outcome"],
            "provider": audit["provider"],
        },
    )


def fail_open(case: FailOpen, *, engaged: bool, now: datetime) -> Event:
    """Fail-open engaged (every address of a name is down: all kept) or released.

    Fields: ``name``, ``type`` ("A"/"AAAA"), ``kept`` (the addresses kept in DNS).
    """
    return Event(
        "fail_open_engaged" if engaged else "fail_open_released",
        timestamp(now),
        {"name": case.name, "type": case.type, "kept": list(case.kept)},
    )


def fail_closed(case: FailClosed, *, engaged: bool, now: datetime) -> Event:
    """Fail-closed engaged (every address of a name is down and its ``all_down`` policy
    withdraws them all: the name answers NODATA) or released.

    Fields: ``name``, ``type`` ("A"/"AAAA"), ``down`` (the addresses known down).
    """
    return Event(
        "fail_closed_engaged" if engaged else "fail_closed_released",
        timestamp(now),
        {"name": case.name, "type": case.type, "down": list(case.down)},
    )


def brake(result: BrakeResult, *, engaged: bool, now: datetime) -> Event:
    """The mass-withdrawal brake engaged (too many targets down at once: some held in DNS)
    or released.

    Fields: ``groups``: one ``{"group", "down", "size", "allowed", "held"}`` per group
    where it holds (empty when released).
    """
    return Event(
        "brake_engaged" if engaged else "brake_released",
        timestamp(now),
        {
            "groups": [
                {
                    "group": e.group,
                    "down": e.down,
                    "size": e.size,
                    "allowed": e.allowed,
                    "held": list(e.held),
                }
                for e in result.engaged
            ]
        },
    )


def damping(
    *, target: str, suppressed: bool, penalty: float, reuse_in: float | None, now: datetime
) -> Event:
    """Flap damping suppressed ``target`` (kept out of DNS while it flaps) or reused it.

    Fields: ``target``, ``penalty`` (rounded), ``reuse_in`` (seconds until reuse,
    rounded to 1; null when reused).
    """
    return Event(
        "target_suppressed" if suppressed else "target_reused",
        timestamp(now),
        {
            "target": target,
            "penalty": round(penalty),
            "reuse_in": None if reuse_in is None else round(reuse_in),
        },
    )


def failback(
    *, target: str, waiting: bool, wait_seconds: float | None, released_by: str, now: datetime
) -> Event:
    """``target`` is up again but held by its failback gate (``waiting``), or was let
    back by an operator (``released_by``).

    Fields: ``target``, ``wait_seconds`` (null: until an operator releases it),
    ``released_by``.
    """
    return Event(
        "failback_waiting" if waiting else "failback_released",
        timestamp(now),
        {
            "target": target,
            "wait_seconds": None if wait_seconds is None else round(wait_seconds),
            "released_by": released_by,
        },
    )


def propagation(provider: str, lag: Lag, *, lagging: bool, limit: float, now: datetime) -> Event:
    """An authoritative server serves an old answer past the verify limit (``lagging``),
    or caught up.

    Fields: ``provider``, ``server`` (``IP:port``, or ``api``), ``names`` (``"name
    type"`` texts it is behind on), ``detail`` (its last answer), ``limit`` (seconds).
    """
    return Event(
        "propagation_lagging" if lagging else "propagation_recovered",
        timestamp(now),
        {
            "provider": provider,
            "server": lag.source,
            "names": [f"{name} {rtype}" for name, rtype in lag.keys],
            "detail": lag.detail,
            "limit": limit,
        },
    )


def quorum(*, unmet: bool, live: int, needed: int, unmet_for: float, now: datetime) -> Event:
    """The quorum has been unmet for ``unmet_for`` seconds, or is met again after that long.

    Fields: ``live_peers``, ``min_peers_agree``, ``unmet_for`` (seconds, rounded to 0.1).
    """
    return Event(
        "quorum_unmet" if unmet else "quorum_restored",
        timestamp(now),
        {"live_peers": live, "min_peers_agree": needed, "unmet_for": round(unmet_for, 1)},
    )


def name_conflict(*, node: str, other: str | None, serf_quit: bool, now: datetime) -> Event:
    """Another Serf member uses this agent's node name ``node``, at address ``other``
    (``None``: the conflict is resolved). ``serf_quit``: this agent's Serf lost the conflict
    resolution and shut down (the agent is out of the cluster).

    Fields: ``node``, ``other`` (``"host:port"`` or null), ``serf_quit``.
    """
    return Event(
        "name_conflict_resolved" if other is None else "name_conflict",
        timestamp(now),
        {"node": node, "other": other, "serf_quit": serf_quit},
    )


def agent(
    *,
    started: bool,
    version: str,
    dry_run: bool,
    provider: str,
    targets: int,
    names: Sequence[str],
    now: datetime,
) -> Event:
    """The agent started or is stopping.

    Fields: ``version``, ``dry_run``, ``provider``, ``targets`` (how many), ``names``.
    """
    return Event(
        "agent_started" if started else "agent_stopped",
        timestamp(now),
        {
            "version": version,
            "dry_run": dry_run,
            "provider": provider,
            "targets": targets,
            "names": list(names),
        },
    )


_VERBS = {
    ("create", False): "added",
    ("delete", False): "removed",
    ("create", True): "would add",
    ("update", False): "changed the TTL of",
    ("update", True): "would change the TTL of",
    ("delete", True): "would remove",
}


def describe(event: Event) -> str:
    """One line of text for ``event``; dry-run changes say "would add"/"would remove", and
    name their provider ("... A 192.0.2.7 at route53 (target 192.0.2.7 down)")."""
    f = event.fields
    if event.kind == "dns_change":
        dry = bool(f["dry_run"])
        verb = _VERBS[(f["action"], dry)]
        tag = "DNS (DRY-RUN)" if dry else "DNS"
        at = f" at {f['provider']}" if f.get("provider") else ""
        return f"{tag}: {verb} {f['name']} {f['type']} {f['target']}{at} ({f['reason']})"
    if event.kind == "fail_open_engaged":
        return (
            f"FAIL-OPEN engaged for {f['name']} {f['type']}: every configured address is down; "
            f"keeping all of them in DNS ({', '.join(f['kept'])})"
        )
    if event.kind == "fail_open_released":
        return f"fail-open released for {f['name']} {f['type']}"
    if event.kind == "fail_closed_engaged":
        return (
            f"FAIL-CLOSED engaged for {f['name']} {f['type']}: every configured address is "
            f"down ({', '.join(f['down'])}) and all_down = fail-closed: all withdrawn, the "
            f"name answers NODATA for {f['type']}"
        )
    if event.kind == "fail_closed_released":
        return f"fail-closed released for {f['name']} {f['type']}: an address is up again"
    if event.kind == "quorum_unmet":
        return (
            f"QUORUM UNMET for {f['unmet_for']:g}s: {f['live_peers']} live peer(s), "
            f"min_peers_agree = {f['min_peers_agree']}: no DNS change can be made"
        )
    if event.kind == "quorum_restored":
        return (
            f"quorum restored: {f['live_peers']} live peer(s) (was unmet for {f['unmet_for']:g}s)"
        )
    if event.kind == "name_conflict":
        fate = "Serf kept it"
        if f["serf_quit"]:
            fate = "its Serf quit: this agent is out of the cluster"
        return (
            f"NODE NAME CONFLICT: node name {f['node']!r} is also used by the node at "
            f"{f['other']} ({fate}); give each agent a unique node_name"
        )
    if event.kind == "brake_engaged":
        groups = "; ".join(
            f"{g['group']}: {g['down']} of {g['size']} down, {len(g['held'])} held"
            for g in f["groups"]
        )
        return (
            f"BRAKE engaged: too many targets down at once ({groups}); is the agent's own "
            "network degraded? The held addresses stay in DNS"
        )
    if event.kind == "propagation_lagging":
        return (
            f"PROPAGATION LAGGING at {f['provider']}: server {f['server']} has not served the "
            f"planned answer of {', '.join(f['names'])} for more than {f['limit']:g}s "
            f"({f['detail']})"
        )
    if event.kind == "propagation_recovered":
        return (
            f"propagation recovered at {f['provider']}: server {f['server']} serves the "
            "planned answers again"
        )
    if event.kind == "brake_released":
        return "brake released: withdrawals proceed as decided"
    if event.kind == "target_suppressed":
        return (
            f"DAMPING: {f['target']} flaps (penalty {f['penalty']}): kept out of DNS for "
            f"about {f['reuse_in']}s even while up"
        )
    if event.kind == "target_reused":
        return f"damping: {f['target']} is no longer suppressed"
    if event.kind == "failback_waiting":
        wait = (
            "until an operator releases it (goavail failback)"
            if f["wait_seconds"] is None
            else f"for {f['wait_seconds']}s more"
        )
        return f"FAILBACK: {f['target']} is up again, kept out of DNS {wait}"
    if event.kind == "failback_released":
        return f"failback: {f['target']} released by {f['released_by']}"
    if event.kind == "name_conflict_resolved":
        return f"node name conflict of {f['node']!r} resolved"
    mode = " in DRY-RUN (no DNS change is made)" if f["dry_run"] else ""
    if event.kind == "agent_started":
        return (
            f"goavail {f['version']} started{mode}: {f['targets']} targets, "
            f"names {', '.join(f['names'])}, provider {f['provider']}"
        )
    return f"goavail {f['version']} stopping"


def text(
    events: Sequence[Event], *, agent: str, dropped: int = 0, max_lines: int = MAX_LINES
) -> str:
    """The chat text of one message: a header naming the agent, one line per event.

    A single event fits on the header line; more are listed one per line, at
    most ``max_lines`` of them, then ``"... and N more"``. ``dropped`` events
    (lost to a full queue) are mentioned at the end.
    """
    head = f"[goavail {agent}]"
    if len(events) == 1:
        lines = [f"{head} {describe(events[0])}"]
    else:
        lines = [f"{head} {len(events)} events:"]
        lines.extend(f"• {describe(e)}" for e in events[:max_lines])
        if len(events) > max_lines:
            lines.append(f"... and {len(events) - max_lines} more")
    if dropped:
        lines.append(f"({dropped} earlier event(s) not sent: the notification queue was full)")
    return "\n".join(lines)


def render(
    sink: SinkType,
    events: Sequence[Event],
    *,
    agent: str,
    version: str,
    dropped: int = 0,
    channel: str | None = None,
    username: str | None = None,
    max_lines: int = MAX_LINES,
) -> dict[str, Any]:
    """The JSON body of one message carrying ``events`` (at least one) to a ``sink``.

    Args:
        sink: the destination type.
        events: the batch, oldest first.
        agent: this agent's node name.
        version: goavail's version.
        dropped: events lost since the previous message (queue full).
        channel, username: chat overrides (slack/mattermost; omitted when None).
        max_lines: events listed in the chat text.

    Raises:
        ValueError: ``events`` is empty.
    """
    if not events:
        raise ValueError("a message needs at least one event")
    message = text(events, agent=agent, dropped=dropped, max_lines=max_lines)
    if sink == "webhook":
        return {
            "agent": agent,
            "version": version,
            "text": message,
            "dropped": dropped,
            "events": [e.to_json() for e in events],
        }
    body: dict[str, Any] = {"text": message}
    if channel is not None:
        body["channel"] = channel
    if username is not None:
        body["username"] = username
    return body
