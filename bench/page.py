"""Status page at fleet size: render times of ``/`` and ``/api/status`` through the real
aiohttp handlers, for 10,000 targets in 5,000 names across 5 zones (issue 14).

Usage (no root needed: nothing is probed)::

    .venv/bin/python -m bench.page --renders 50 --json bench/results/page.json

The fleet (``--names`` names, two targets each, in 5 Cloudflare zones):

* every name has a primary pool of its own two targets and, as backup, its zone's
  backup pool (8 targets of the other zones' primaries: a target in several pools is
  probed once), so there are ``names + 5`` pools;
* an incident under way: 1 % of targets down (100 at 10,000), among them both targets
  of 20 names (their zone's backup serves), a whole backup pool plus the primaries of
  two of its names (fail-open), 5 of the 8 targets of another backup pool (the brake
  holds some), 10 targets drained by an override; the DNS records are those of the
  plan before the incident, so the plan's changes are pending.

The agent is composed from that configuration as ``goavail monitor`` composes it
(:func:`goavail.compose.compose`; Cloudflare provider, never contacted: the agent is
not started), its states are fed through its own check, and its
:class:`~goavail.web.server.WebServer` application is served by aiohttp's test server
on 127.0.0.1. Each request is timed from send to the last byte received, ``--renders``
times per URL after one warm-up request; p50 and p99 are printed (and written to
``--json``). The page's URLs: the first page, the second, the down filter, a name
filter, a pool filter; ``/api/status``: the whole document (every target and name,
the backwards-compatible default) and one page of 100.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ZONES = tuple(f"zone{i}.example" for i in range(5))
URLS = (
    "/",
    "/?page=2",
    "/?state=down",
    "/?name=svc-4242",
    "/?pool=backup-zone1.example",
    "/?state=differs",
    "/api/status?per_page=100",
    "/api/status",
)


def address(i: int) -> str:
    """The i-th target: 127.20.0.1 onwards (loopback; never probed here)."""
    n = i + 1
    return f"127.{20 + n // 65536}.{n // 256 % 256}.{n % 256}"


def fleet_config(names: int, workdir: Path) -> tuple[Path, dict[str, Any]]:
    """Write the configuration; return its path and the fleet's layout."""
    primaries: dict[str, list[str]] = {}
    zone_of: dict[str, str] = {}
    for n in range(names):
        zone = ZONES[n % len(ZONES)]
        name = f"svc-{n}.{zone}"
        primaries[name] = [address(2 * n), address(2 * n + 1)]
        zone_of[name] = zone
    ordered = list(primaries)
    backups: dict[str, list[str]] = {}
    for z, zone in enumerate(ZONES):
        other = ordered[(z + 1) % len(ZONES) :: len(ZONES)]  # the next zone's names
        chosen = other[100:104] if len(other) >= 104 else other[:4]
        backups[zone] = [a for name in chosen for a in primaries[name]]
    lines = [
        "interval = 10",
        "failure_threshold = 1",
        "rise_threshold = 1",
        "port = 9",
        "",
        "[Server]",
        'listen = "127.0.0.1:8080"',
        "",
        "[Brake]",
        "max_down_share = 0.5",
        "",
        "[Cloudflare]",
        f'dns_domain = "{ZONES[0]}"',
        "zones = [" + ", ".join(f'"{z}"' for z in ZONES[1:]) + "]",
        "ttl = 60",
    ]
    for name, addresses in primaries.items():
        lines += ["", "[[pools]]", f'name = "{name.split(".")[0]}"']
        lines.append("addresses = [" + ", ".join(f'"{a}"' for a in addresses) + "]")
    for zone, addresses in backups.items():
        lines += ["", "[[pools]]", f'name = "backup-{zone}"']
        lines.append("addresses = [" + ", ".join(f'"{a}"' for a in addresses) + "]")
    for name in primaries:
        pool = name.split(".")[0]
        lines += ["", "[[names]]", f'name = "{name}"']
        lines.append(f'pools = ["{pool}", "backup-{zone_of[name]}"]')
    path = workdir / "goavail.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, {"primaries": primaries, "backups": backups, "zone_of": zone_of}


def build_agent(names: int, workdir: Path) -> Any:
    """The composed agent with the incident's states fed in (see the module docstring)."""
    os.environ.setdefault("CLOUDFLARE_API_TOKEN", "bench-page-token-not-used-0123456789")
    os.environ.setdefault("CLOUDFLARE_BASE_URL", "http://127.0.0.1:9/client/v4")
    from goavail.checks.base import ProbeResult
    from goavail.compose import compose, load_checked
    from goavail.decision import Override
    from goavail.dns.model import Record
    from goavail.dns.plan import plan_names
    from goavail.health import State
    from goavail.options import Options

    path, layout = fleet_config(names, workdir)
    options = Options(path, True, "tcp", "cloudflare")
    agent = compose(load_checked(options), options)
    primaries: dict[str, list[str]] = layout["primaries"]
    backups: dict[str, list[str]] = layout["backups"]
    ordered = list(primaries)
    down: set[str] = set()
    for name in ordered[1000:1020]:  # both targets down: the zone's backup serves
        down.update(primaries[name])
    down.update(backups[ZONES[2]])  # a whole backup pool, and two of its names' primaries
    for name in [n for n in ordered if n.endswith(ZONES[2])][200:202]:
        down.update(primaries[name])
    down.update(backups[ZONES[3]][:5])  # 5 of 8: the brake holds one (at most 4 go)
    total = 2 * names
    step = max(1, total // 40)
    down.update(address(i) for i in range(7, total, step))  # scattered: about 1 % in all
    check = agent.checks.single_check
    assert check is not None
    for i in range(total):
        target = address(i)
        ok = target not in down
        check.on_result(
            target, ProbeResult(ok=ok, rtt=0.0004 if ok else None, error=None if ok else "timeout")
        )
    now = time.time()
    for i in range(total):  # up for two hours; the down ones and 50 others changed lately
        target = address(i)
        recent = target in down or i % (total // 50) == 3
        agent.targets[target].since = now - (60.0 + i % 600 if recent else 7200.0)
    for i in range(11, 11 + 10 * 97, 97):
        agent.overrides.set(address(i), Override.DOWN, "kernel upgrade, OPS-1234")
    agent.held()  # the brake's state, as a reconciler pass computes it
    before = {
        name: [Record(name, "A", a, ttl=60) for a in addresses]
        for name, addresses in primaries.items()
    }
    result = plan_names(
        agent.publication.specs,
        agent.decision.effective,
        before,
        held=agent.brake_state.held,
    )
    reconciler = agent.reconciler
    reconciler.current = before
    reconciler.pending = result.changes
    reconciler.fail_open = result.fail_open
    reconciler.read_at = time.monotonic()
    states = [agent.decision.effective.get(address(i), State.UNKNOWN) for i in range(total)]
    return agent, {
        "targets": total,
        "names": len(primaries),
        "pools": len(agent.publication.pools),
        "down": sum(1 for s in states if s is State.DOWN),
        "pending_changes": len(result.changes),
        "fail_open": len(result.fail_open),
        "brake_held": len(agent.brake_state.held),
    }


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in (0, 1]) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))]


async def measure(agent: Any, renders: int) -> list[dict[str, Any]]:
    """Time every URL through the real handlers on 127.0.0.1 (aiohttp's test server)."""
    from aiohttp.test_utils import TestClient, TestServer

    from goavail.config.web import ServerSection
    from goavail.web.server import WebServer

    server = WebServer(ServerSection(), agent, environ={})
    results = []
    async with TestClient(TestServer(server.app(), host="127.0.0.1")) as client:
        for url in URLS:
            times = []
            size = 0
            for i in range(renders + 1):
                started = time.perf_counter()
                async with client.get(url) as answer:
                    body = await answer.read()
                    assert answer.status == 200, (url, answer.status, body[:200])
                elapsed = time.perf_counter() - started
                if i:  # the first one warms up (template compile, index build)
                    times.append(elapsed)
                size = len(body)
            results.append(
                {
                    "url": url,
                    "renders": renders,
                    "bytes": size,
                    "p50_ms": round(statistics.median(times) * 1000, 1),
                    "p99_ms": round(percentile(times, 0.99) * 1000, 1),
                    "max_ms": round(max(times) * 1000, 1),
                }
            )
    return results


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.page", description=__doc__.split("\n")[0])
    p.add_argument("--names", type=int, default=5000, help="names (two targets each)")
    p.add_argument("--renders", type=int, default=50, help="timed requests per URL")
    p.add_argument("--json", type=Path, help="write the results here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import logging

    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="goavail-bench-page-") as tmp:
        started = time.perf_counter()
        agent, fleet = build_agent(args.names, Path(tmp))
        built = time.perf_counter() - started
        snaps = []
        for _ in range(20):
            t0 = time.perf_counter()
            agent.snapshot()
            snaps.append(time.perf_counter() - t0)
        results = asyncio.run(measure(agent, args.renders))
    print(
        f"fleet: {fleet['targets']:,} targets, {fleet['names']:,} names, {fleet['pools']:,} "
        f"pools in {len(ZONES)} zones; {fleet['down']} down, {fleet['pending_changes']} "
        f"pending changes, {fleet['fail_open']} fail-open, {fleet['brake_held']} held by "
        f"the brake (built in {built:.1f} s)"
    )
    print(f"snapshot (on the event loop): p50 {statistics.median(snaps) * 1000:.1f} ms")
    print(f"{'URL':32s} {'bytes':>10s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}")
    for r in results:
        print(
            f"{r['url']:32s} {r['bytes']:>10,} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
            f"{r['max_ms']:>8.1f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "fleet": fleet,
                    "snapshot_p50_ms": round(statistics.median(snaps) * 1000, 2),
                    "results": results,
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
