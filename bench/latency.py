"""Single-node failover latency: outage -> DELETE at the Cloudflare stand-in.

One real ``goavail monitor`` (Cloudflare provider, ``--no-dry-run``) watches three
loopback targets whose ``www`` records sit in the in-process Cloudflare stand-in
(``tests.cfstub.CloudflareStub``). Each trial waits a random fraction of an interval
(random phase against the probe schedule), blackholes one target with an nftables
rule (``tests.netns.Nft``: packets to it are dropped on arrival), and measures the
time from just before the rule is added to the moment the stand-in logs the request
that deletes the record. The rule is then removed and the record must come back
before the next trial.

Must run inside the harness's private network namespace (see ``bench.run``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.run import LogWatcher, start, stop
from tests.cfstub.server import CloudflareStub, RequestLogEntry
from tests.netns import Nft

TARGETS = ("127.0.1.1", "127.0.1.2", "127.0.1.3")
VICTIM = TARGETS[0]
ZONE = "bench.test"
FAILURE_THRESHOLD = 2


def _is_delete(entry: RequestLogEntry) -> bool:
    """True for a request that deletes a record (single DELETE or a batch with deletes)."""
    if entry.status >= 300:
        return False
    if entry.method == "DELETE":
        return True
    return entry.route.endswith("/batch") and bool((entry.body or {}).get("deletes"))


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"latency: timed out waiting for {what}")
        time.sleep(0.01)


def run_latency(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``args.latency_trials`` outages; return samples, p50, p99 and the bound."""
    os.environ["GOAVAIL_TEST_PRIVATE_NETNS"] = "1"  # bench.run checked: only `lo` exists
    interval = args.interval
    timeout_s = float(args.timeout_s)
    bound = FAILURE_THRESHOLD * interval + timeout_s + 0.2
    deletes: list[float] = []
    lock = threading.Lock()
    samples: list[float] = []
    rng = random.Random()
    with CloudflareStub() as stub, tempfile.TemporaryDirectory(prefix="goavail-lat-") as tmp:
        note = stub.state.note

        def timed_note(entry: RequestLogEntry) -> None:
            if _is_delete(entry):
                with lock:
                    deletes.append(time.monotonic())
            note(entry)

        stub.state.note = timed_note  # type: ignore[method-assign]
        stub.add_zone(ZONE)
        for t in TARGETS:
            stub.add_record(ZONE, f"www.{ZONE}", "A", t, ttl=120)
        workdir = Path(tmp)
        config = workdir / "goavail.toml"
        config.write_text(
            f"failure_threshold = {FAILURE_THRESHOLD}\ninterval = {interval:g}\n"
            f'timeout = "{args.timeout}"\n\n[Cloudflare]\ndns_domain = "{ZONE}"\n'
            f'hostnames = ["www"]\nip_addresses = {json.dumps(list(TARGETS))}\nttl = 120\n',
            encoding="ascii",
        )
        log = workdir / "goavail.log"
        log.touch()
        watcher = LogWatcher(log)
        assert stub.token is not None
        os.environ["CLOUDFLARE_BASE_URL"] = stub.base_url
        os.environ["CLOUDFLARE_API_TOKEN"] = stub.token
        cmd = [
            *(sys.executable, "-m", "goavail", "monitor", "--config-file", str(config)),
            *("--dns-provider", "cloudflare", "--no-dry-run"),
        ]
        proc = start(cmd, log, keep_env=("CLOUDFLARE_BASE_URL", "CLOUDFLARE_API_TOKEN"))
        try:

            def all_up() -> bool:
                watcher.poll()
                return watcher.up_from_unknown >= len(TARGETS)

            _wait(all_up, 30, "every target up")

            def victim_present() -> bool:
                return any(r["content"] == VICTIM for r in stub.records(ZONE))

            with Nft() as nft:
                for i in range(args.latency_trials):
                    time.sleep(1.0 + rng.uniform(0, interval))
                    with lock:
                        deletes.clear()
                    t0 = time.monotonic()
                    nft.blackhole(VICTIM)
                    _wait(lambda: bool(deletes), 10 * bound, f"DELETE in trial {i + 1}")
                    with lock:
                        samples.append(deletes[0] - t0)
                    nft.clear()
                    _wait(victim_present, 30, f"record restored after trial {i + 1}")
                    print(f"  latency trial {i + 1}: {samples[-1]:.3f} s", flush=True)
        finally:
            stop(proc)
    ordered = sorted(samples)
    p99_index = min(len(ordered) - 1, max(0, round(0.99 * len(ordered) + 0.5) - 1))
    return {
        "trials": len(samples),
        "failure_threshold": FAILURE_THRESHOLD,
        "interval_s": interval,
        "timeout_s": timeout_s,
        "bound_s": round(bound, 3),
        "p50_s": round(statistics.median(ordered), 3),
        "p99_s": round(ordered[p99_index], 3),
        "min_s": round(ordered[0], 3),
        "max_s": round(ordered[-1], 3),
        "samples_s": [round(s, 3) for s in samples],
    }
