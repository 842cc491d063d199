"""``goavail explain NAME``'s text report, from the ``/api/explain`` document (pure).

The document is :func:`goavail.web.explain.explain_document`'s, as the agent's HTTP
API sends it (JSON); this module only formats it, so the CLI needs neither aiohttp nor
the agent. The report: a short paragraph on the answer (the document's ``summary``),
the pools, each provider's records in DNS and planned (and served, with verify), then
one table per address in priority order: its checks with their thresholds and last
results, its own verdict, the gates, the peers' votes, the decision, the override, the
brake and whether it is in each provider's planned answer, and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _records(records: Sequence[dict[str, Any]]) -> str:
    if not records:
        return "none"
    return ", ".join(
        f"{r['address']} {r['type']}" + (f" (ttl {r['ttl']})" if r.get("ttl") else "")
        for r in records
    )


def _check(check: dict[str, Any]) -> str:
    last = check.get("last")
    if last is None:
        result = "no result yet"
    elif last["ok"]:
        rtt = last.get("rtt_seconds")
        result = "last ok" + (f" in {rtt * 1000:.1f} ms" if rtt is not None else "")
    else:
        result = f"last failed: {last.get('error') or 'error'}"
    run = (
        f"{check['failures']} failed in a row"
        if check["failures"]
        else f"{check['successes']} ok in a row"
    )
    what = f" ({check['what']})" if check.get("what") else ""
    return f"{check['state']}{what}, fall {check['fall']} rise {check['rise']}: {run}, {result}"


def _votes(row: dict[str, Any]) -> str:
    votes = row.get("votes")
    if votes is None:
        return "single node (no peers)"
    quorum = row["quorum"]
    shown = " ".join(f"{node}={vote or 'none'}" for node, vote in votes.items()) or "no live peer"
    met = {True: "met", False: "not met"}.get(quorum["met"], "n/a")
    return f"{shown}; {quorum['agreeing']} agree, {quorum['needed']} needed: {met}"


def _override(override: dict[str, Any]) -> str:
    text = str(override["mode"])
    local = override.get("local")
    if local:
        text += f" (this agent, since {local.get('since', '')}: {local.get('reason', '')})"
    for node, mode in override.get("peers", {}).items():
        text += f" (peer {node}: {mode})"
    return text


def _table(rows: list[tuple[str, str]], indent: str = "  ") -> list[str]:
    width = max(len(k) for k, _ in rows)
    return [f"{indent}{k.ljust(width)}  {v}".rstrip() for k, v in rows]


def _address(row: dict[str, Any]) -> list[str]:
    rows: list[tuple[str, str]] = []
    for check in row["checks"]:
        rows.append((f"check {check['id']}", _check(check)))
    rows.append(("own verdict", f"{row['own']} (since {row['since']})"))
    rows.append(("gates", row["gates"]))
    rows.append(("announced", row["announced"]))
    rows.append(("votes", _votes(row)))
    rows.append(("decision", f"{row['decision']}: {row['decided']}"))
    rows.append(("override", _override(row["override"])))
    rows.append(("effective", row["effective"]))
    brake = row["brake"]
    rows.append(
        (
            "brake",
            f"holds it in DNS ({', '.join(brake['groups'])})" if brake["held"] else "not held",
        )
    )
    for answer in row["answer"]:
        state = ("in DNS" if answer["in_dns"] else "not in DNS") + (
            ", planned" if answer["planned"] else ", not planned"
        )
        rows.append((answer["provider"], f"{state}: {answer['why']}"))
    head = f"{row['address']} ({row['type']}, pool {', '.join(row['pools'])})"
    return [head, *_table(rows)]


def render(doc: dict[str, Any]) -> str:
    """The text report of an ``/api/explain`` document (see the module docstring)."""
    mode = "cluster" if doc["mode"] == "cluster" else "single node"
    dry = ", dry-run" if doc.get("dry_run") else ""
    out = [f"{doc['name']}: as seen by {doc['node']} ({mode}{dry}), {doc['generated_at']}", ""]
    out.extend(f"  {sentence}" for sentence in doc["summary"])
    out.append("")
    out.append(
        "Pools: "
        + "; ".join(f"{p['name']} ({p['role']}): {', '.join(p['addresses'])}" for p in doc["pools"])
    )
    out.append("")
    for p in doc["providers"]:
        out.append(
            f"{p['provider']}: in DNS: {_records(p['current'])}; planned: {_records(p['planned'])}"
        )
        for change in p["pending"]:
            out.append(
                f"  pending {change['action']} {change['address']} {change['type']}: "
                f"{change['reason']}"
            )
        for key in p.get("served", ()):
            servers = "; ".join(
                f"{server} {'agrees' if s['agrees'] else 'differs'} ({s['served']})"
                for server, s in key["servers"].items()
            )
            out.append(f"  served {key['type']}: {key['state']}: {servers or 'no server yet'}")
    for row in doc["addresses"]:
        out.append("")
        out.extend(_address(row))
    return "\n".join(out)


__all__ = ["render"]
