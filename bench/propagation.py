"""Propagation time, decision -> the last authoritative server serving it (issue 15).

Usage (root: ICMP probes, nftables, a private network namespace)::

    sudo .venv/bin/python -m bench.propagation --trials 20 --json bench/results/propagation.json

Two set-ups, each with the real ``goavail monitor`` and real Knot servers on loopback
inside a private network namespace (the e2e harness's ``tests/knot.py``):

* ``rfc2136+knot``: goavail sends RFC 2136 updates to a Knot primary, which NOTIFYs a
  Knot secondary that transfers the zone (IXFR); ``verify`` names both.
* ``zonefile+knot``: goavail writes a zone file, its ``reload_command`` is ``knotc
  zone-reload``; ``verify`` names the Knot server that loads it.

Each trial withdraws one target (an nftables blackhole: its ICMP probes time out) and
restores it; goavail logs each change's propagation time, measured from the decision
(the reconciler's wake-up by the decision) to the query round that found the last
server serving the planned answer (``verify.interval`` = 20 ms: that is the
resolution). p50 and p99 per set-up and change kind are printed and written to
``--json`` with the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

WWW = "www.example.test"
A1, A2 = "127.20.150.2", "127.20.150.3"
PROPAGATED = re.compile(
    r"(?P<provider>\w+): www\.example\.test A propagated: .* (?P<seconds>[0-9.]+)s after the "
    r"decision \(last: (?P<last>\S+)\)"
)
TOP = """\
interval = "200ms"
timeout = "150ms"
failure_threshold = 2
rise_threshold = 2
resync_interval = "30s"

[Server]
enabled = false
"""


def verify_line(*servers: str) -> str:
    """The section's ``verify`` key naming ``servers``."""
    return f'verify = {{ servers = {json.dumps(list(servers))}, interval = "20ms" }}\n'


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0-1) by linear interpolation (``statistics.quantiles``'s
    inclusive method; a single value is its own quantile)."""
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[min(98, max(0, round(q * 100) - 1))]


def trials(proc: Any, nft: Any, count: int, provider: str) -> dict[str, list[float]]:
    """``count`` withdrawals and restorations; their propagation times in seconds."""
    found: dict[str, list[float]] = {"withdraw": [], "restore": []}
    for _ in range(count):
        for kind in ("withdraw", "restore"):
            mark = proc.mark()
            if kind == "withdraw":
                nft.blackhole(A2)
            else:
                nft.clear()
            line = proc.wait_for(rf"{provider}: www\.example\.test A propagated", since=mark)
            match = PROPAGATED.search(line)
            if match is None:
                raise SystemExit(f"bench: unexpected line: {line}")
            found[kind].append(float(match["seconds"]))
    return found


def rfc2136(workdir: Path, count: int) -> dict[str, list[float]]:
    """The RFC 2136 + Knot primary + Knot secondary set-up."""
    from tests.e2e.harness import GoavailProcess
    from tests.knot import KEY_NAME, KnotServer, free_port
    from tests.netns import Nft

    port = free_port()
    with (
        KnotServer("example.test", soa="1 2 1 3600 60", secondaries=[port]) as primary,
        KnotServer("example.test", primary=primary, via="127.0.0.2", port=port) as secondary,
        Nft() as nft,
    ):
        config = (
            TOP
            + "\n[RFC2136]\n"
            + f'server = "127.0.0.1"\nport = {primary.port}\nzone = "example.test"\n'
            + f'tsig_key_name = "{KEY_NAME}"\nhostnames = ["www"]\n'
            + f"ip_addresses = {json.dumps([A1, A2])}\n"
            + verify_line(primary.address, secondary.address)
        )
        env = {"GOAVAIL_TSIG_SECRET": primary.secret}
        args = ["--dns-provider", "rfc2136", "--no-dry-run"]
        with GoavailProcess(workdir, config, args=args, env=env) as proc:
            proc.wait_for(r"rfc2136: www\.example\.test A propagated")
            result = trials(proc, nft, count, "rfc2136")
            proc.stop()
    return result


def zonefile(workdir: Path, count: int) -> dict[str, list[float]]:
    """The zone file + Knot set-up."""
    from tests.e2e.harness import GoavailProcess
    from tests.knot import KnotServer
    from tests.netns import Nft

    zone = workdir / "example.test.zone"
    zone.write_text(
        "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 604800 60\n"
        f"@ IN NS ns1\nns1 IN A 127.0.0.1\nwww 60 IN A {A1}\nwww 60 IN A {A2}\n"
    )
    with KnotServer("example.test", zonefile=zone) as knot, Nft() as nft:
        config = (
            TOP
            + "\n[Zonefile]\n"
            + f'path = {json.dumps(str(zone))}\norigin = "example.test"\n'
            + f'hostnames = ["www"]\nip_addresses = {json.dumps([A1, A2])}\n'
            + f"reload_command = {json.dumps(knot.reload_argv())}\n"
            + verify_line(knot.address)
        )
        args = ["--dns-provider", "zonefile", "--no-dry-run"]
        with GoavailProcess(workdir, config, args=args) as proc:
            proc.wait_for(r"decision for 127\.20\.150\.3: up")
            result = trials(proc, nft, count, "zonefile")
            proc.stop()
    return result


def summary(values: list[float]) -> dict[str, float | int]:
    """n, p50, p99, max (seconds)."""
    return {
        "n": len(values),
        "p50": round(percentile(values, 0.50), 3),
        "p99": round(percentile(values, 0.99), 3),
        "max": round(max(values), 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run both set-ups; print and (``--json``) write the results."""
    parser = argparse.ArgumentParser(prog="python -m bench.propagation", description=__doc__)
    parser.add_argument("--trials", type=int, default=20, help="withdraw+restore per set-up")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    from tests.netns import enter_private_netns

    if not enter_private_netns():
        raise SystemExit("bench.propagation: needs root (a private network namespace)")
    load_start = os.getloadavg()
    results: dict[str, Any] = {}
    for name, setup in (("rfc2136+knot", rfc2136), ("zonefile+knot", zonefile)):
        with tempfile.TemporaryDirectory(prefix="goavail-bench-prop-") as tmp:
            started = time.monotonic()
            found = setup(Path(tmp), args.trials)
            results[name] = {kind: summary(values) for kind, values in found.items()}
            results[name]["raw"] = found
            results[name]["wall_seconds"] = round(time.monotonic() - started, 1)
        for kind in ("withdraw", "restore"):
            s = results[name][kind]
            print(
                f"{name:14} {kind:8} n={s['n']:3} p50 {s['p50']:.3f}s  p99 {s['p99']:.3f}s  "
                f"max {s['max']:.3f}s"
            )
    given = sys.argv[1:] if argv is None else list(argv)
    load_end = os.getloadavg()
    document: dict[str, Any] = {
        "command": "python -m bench.propagation " + " ".join(given),
        "machine": {
            "nproc": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "loadavg_at_start": load_start,
            "loadavg_at_end": load_end,
        },
        "results": results,
    }
    print(f"load average: start {load_start}, end {load_end}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
