"""Fleet benchmark on the path users run (issue 14): Cloudflare through its SDK, live, server on.

Usage (root; the harness re-executes itself in a private network namespace)::

    .venv/bin/python -m bench.cfpath --targets 10000,50000 --duration 130 \\
        --json bench/results/cloudflare.json

(``make bench BENCH_PATH=cloudflare``.) For each size N the harness

1. generates N loopback targets (:func:`bench.run.loopback_targets`) and publishes
   them as N/2 names across :data:`ZONES` zones of one Cloudflare account: name
   ``nI.zK.cfbench.test`` is served by its own ``[[pools]]`` entry of two targets
   (10,000 targets: 5,000 names, 1,000 per zone, 2,000 A records per zone);
2. starts the Cloudflare API stand-in (:class:`tests.cfstub.server.CloudflareStub`, a
   real aiohttp server on 127.0.0.1 in the namespace) holding every record already,
   so that in steady state nothing is to change (as :mod:`bench.run`);
3. starts ``python -m goavail monitor --dns-provider cloudflare --no-dry-run`` with
   ``CLOUDFLARE_BASE_URL`` pointing the official SDK at the stand-in, ``[Server]``
   on, ``interval = 1``, ``timeout = "500ms"``, ``failure_threshold = 3`` and
   ``resync_interval`` = ``--resync`` (20 s: six resyncs or more in a 130 s window);
4. waits until every target is up and the first pass has converged, then measures
   one window of ``--duration`` seconds: goavail's CPU seconds (utime + stime) per
   round, its RSS every second (the largest and the last) and VmHWM, every
   ``-> down`` it logs (there is no outage: each is a false down), the API
   requests the stand-in answered by kind, and the reconcile passes
   (``goavail_reconcile_passes`` of ``/metrics``) to give API calls per resync;
   then a second window of ``--page-duration`` seconds (60 s; probing and resyncs
   go on): every ``--page-every`` seconds (10 s: as the page reloads itself) one
   GET of ``/`` and one of ``/api/status``, each timed to the last byte of the
   body; goavail's CPU per round in that window and its RSS after it are reported
   apart (rendering a page of 10,000 targets is work of its own, not the steady
   state's);
5. stops goavail and runs fping on the same targets (:func:`bench.run.measure_fping`,
   ``--fping-duration`` seconds) for the CPU ratio; one after the other, not side by
   side, for the reason given in :mod:`bench.run`.

The per-target RSS slope is ``(RSS(N2) - RSS(N1)) / (N2 - N1)`` between the two
largest sizes measured (the last RSS sample of each window).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import re
import signal
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from bench.run import (
    LogWatcher,
    SizeResult,
    _raise_on_sigterm,
    ensure_private_netns,
    loopback_targets,
    machine,
    measure_fping,
    profile,
    sample,
    start,
    stop,
)

if TYPE_CHECKING:
    from tests.cfstub.server import CloudflareStub

ZONES: Final = 5
"""Zones of the account the names are spread over."""

PER_NAME: Final = 2
"""Targets (A records) per name."""

DOMAIN: Final = "cfbench.test"
SERVER_PORT: Final = 18080
_PASSES: Final = re.compile(r"^goavail_reconcile_passes(?:_total)?\s+(\S+)$", re.M)

GOALS: Final = {
    "cpu_ratio_max": 1.5,
    "rss_mb_max_at_10000": 100.0,
    "rss_kb_per_extra_target_max": 1.0,
    "false_downs": 0,
}
"""Issue 14's targets on this path."""


def zone_name(k: int) -> str:
    """The k-th zone, ``zK.cfbench.test``."""
    return f"z{k}.{DOMAIN}"


def layout(targets: Sequence[str]) -> list[tuple[str, str, list[str]]]:
    """(zone, name, addresses) per name: :data:`PER_NAME` consecutive targets per name,
    names dealt round-robin over :data:`ZONES` zones. Pure."""
    out: list[tuple[str, str, list[str]]] = []
    for i in range(0, len(targets), PER_NAME):
        zone = zone_name((i // PER_NAME) % ZONES)
        out.append((zone, f"n{i // PER_NAME}.{zone}", list(targets[i : i + PER_NAME])))
    return out


def write_config(workdir: Path, names: Sequence[tuple[str, str, list[str]]], resync: str) -> Path:
    """The goavail config: one pool per name, every zone in ``[Cloudflare]``; its path."""
    parts = [
        "failure_threshold = 3",
        "interval = 1",
        'timeout = "500ms"',
        f'resync_interval = "{resync}"',
        "",
        "[Server]",
        f'listen = "127.0.0.1:{SERVER_PORT}"',
        "",
    ]
    for i, (_zone, name, addrs) in enumerate(names):
        quoted = ", ".join(f'"{a}"' for a in addrs)
        parts += [
            "[[pools]]",
            f'name = "p{i}"',
            f"addresses = [{quoted}]",
            "",
            "[[names]]",
            f'name = "{name}"',
            f'pools = ["p{i}"]',
            "",
        ]
    others = ", ".join(f'"{zone_name(k)}"' for k in range(1, ZONES))
    parts += [
        "[Cloudflare]",
        f'dns_domain = "{zone_name(0)}"',
        f"zones = [{others}]",
        "ttl = 60",
        "",
    ]
    config = workdir / "goavail.toml"
    config.write_text("\n".join(parts), encoding="ascii")
    return config


def seed(stub: CloudflareStub, names: Sequence[tuple[str, str, list[str]]]) -> None:
    """Every record goavail will want, put straight into the stand-in's state.

    :meth:`~tests.cfstub.server.CloudflareStub.add_record` checks each new record
    against every record of its zone (quadratic: minutes at 50,000); these records are
    distinct valid A records by construction, so they go in without that check.
    """
    from tests.cfstub.server import StubRecord

    state = stub.state
    with state.lock:
        for k in range(ZONES):
            stub.add_zone(zone_name(k))
        for zone, name, addrs in names:
            zid = state.zone_id(zone)
            for addr in addrs:
                rec = StubRecord(uuid.uuid4().hex, zid, name, "A", addr, 60, False)
                state.records_by_zone[zid][rec.id] = rec


@dataclass
class PageTiming:
    """Response times of GETs of one path during the window, milliseconds."""

    path: str
    count: int = 0
    errors: int = 0
    bytes: int = 0
    ms: list[float] = field(default_factory=list)

    @property
    def p50_ms(self) -> float | None:
        """Median, ms."""
        return _percentile(self.ms, 0.5)

    @property
    def max_ms(self) -> float | None:
        """Largest, ms."""
        return max(self.ms) if self.ms else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of ``values`` (None when empty). Pure."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def timed_get(url: str, timing: PageTiming, timeout: float = 30.0) -> None:
    """GET ``url`` (the whole body) and add its time to ``timing``."""
    begin = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            body = reply.read()
            ok = reply.status == 200
    except OSError:
        timing.errors += 1
        return
    elapsed = (time.monotonic() - begin) * 1000
    timing.count += 1
    if not ok:
        timing.errors += 1
        return
    timing.bytes = len(body)
    timing.ms.append(round(elapsed, 1))


def reconcile_passes(base: str) -> float | None:
    """``goavail_reconcile_passes`` from ``/metrics`` (None when it does not answer)."""
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as reply:
            text = reply.read().decode()
    except OSError:
        return None
    m = _PASSES.search(text)
    return float(m.group(1)) if m else None


@dataclass
class CfResult(SizeResult):
    """:class:`bench.run.SizeResult` plus what this path adds."""

    names: int = 0
    zones: int = ZONES
    resync_interval: str = ""
    rss_max_in_window_mb: float | None = None
    resyncs_in_window: float | None = None
    api_requests_in_window: dict[str, int] = field(default_factory=dict)
    api_calls_per_resync: float | None = None
    converge_s: float | None = None
    pages: list[dict[str, Any]] = field(default_factory=list)
    page_window_s: float | None = None
    page_window_cpu_per_round: float | None = None
    rss_after_pages_mb: float | None = None
    peak_rss_after_pages_mb: float | None = None


def _kind(method: str, route: str) -> str:
    """A request's kind for the report: ``GET /zones/{zone_id}/dns_records`` -> ``list``."""
    kinds = {
        ("GET", "/zones/{zone_id}/dns_records"): "list records",
        ("POST", "/zones/{zone_id}/dns_records"): "create",
        ("DELETE", "/zones/{zone_id}/dns_records/{record_id}"): "delete",
        ("GET", "/zones"): "list zones",
    }
    return kinds.get((method, route), f"{method} {route}")


def measure(n: int, args: argparse.Namespace) -> CfResult:
    """goavail on the Cloudflare path with ``n`` targets, then fping on them."""
    from tests.cfstub.server import CloudflareStub

    result = CfResult(targets=n, resync_interval=args.resync)
    targets = loopback_targets(n)
    names = layout(targets)
    result.names = len(names)
    base = f"http://127.0.0.1:{SERVER_PORT}"
    with (
        tempfile.TemporaryDirectory(prefix=f"goavail-cfbench-{n}-") as tmp,
        CloudflareStub() as stub,
    ):
        workdir = Path(tmp)
        seed(stub, names)
        config = write_config(workdir, names, args.resync)
        log = workdir / "goavail.log"
        log.touch()
        watcher = LogWatcher(log)
        os.environ["CLOUDFLARE_BASE_URL"] = stub.base_url
        os.environ["CLOUDFLARE_API_TOKEN"] = stub.token or ""
        cmd = [
            sys.executable, "-m", "goavail", "monitor", "--config-file", str(config),
            "--dns-provider", "cloudflare", "--no-dry-run",
        ]  # fmt: skip
        started = time.monotonic()
        proc = start(cmd, log, keep_env=("CLOUDFLARE_BASE_URL", "CLOUDFLARE_API_TOKEN"))
        try:
            limit = args.warmup + n / 2000
            while watcher.up_from_unknown < n and time.monotonic() - started < limit:
                if proc.poll() is not None:
                    watcher.poll()
                    raise RuntimeError(f"goavail exited with {proc.returncode}: {watcher.errors}")
                time.sleep(0.2)
                watcher.poll()
            result.warmup_s = round(time.monotonic() - started, 1)
            result.all_up = watcher.up_from_unknown >= n
            result.up_after_warmup = watcher.up_from_unknown
            # the first pass after everything came up: reconcile_passes moves
            first_passes = reconcile_passes(base)
            while time.monotonic() - started < limit + 60:
                now_passes = reconcile_passes(base)
                if first_passes is None:
                    first_passes = now_passes
                elif now_passes is not None and now_passes > first_passes:
                    break
                time.sleep(0.5)
            result.converge_s = round(time.monotonic() - started, 1)
            time.sleep(args.settle)
            watcher.poll()
            result.false_downs_in_warmup = watcher.downs
            downs_before = watcher.downs
            counts_before = collections.Counter(stub.state.counts)
            passes_before = reconcile_passes(base)
            first = sample(proc.pid)
            rss_max = first.rss_mb
            while time.monotonic() < first.at + args.duration:
                rss_max = max(rss_max, sample(proc.pid).rss_mb)
                time.sleep(min(1.0, max(0.0, first.at + args.duration - time.monotonic())))
            last = sample(proc.pid)
            passes_after = reconcile_passes(base)
            counts_after = collections.Counter(stub.state.counts)
            if args.profile_dir is not None:
                profile(proc.pid, n, args)
            pages = {p: PageTiming(p) for p in ("/", "/api/status")}
            page_first = sample(proc.pid)
            while time.monotonic() < page_first.at + args.page_duration:
                for path, timing in pages.items():
                    timed_get(base + path, timing)
                time.sleep(
                    max(0.0, args.page_every - (time.monotonic() - page_first.at) % args.page_every)
                )
            page_last = sample(proc.pid)
            result.page_window_s = round(page_last.at - page_first.at, 1)
            if args.page_duration > 0:
                result.page_window_cpu_per_round = round(
                    (page_last.cpu - page_first.cpu) / (page_last.at - page_first.at), 4
                )
            result.rss_after_pages_mb = round(page_last.rss_mb, 1)
            result.peak_rss_after_pages_mb = round(page_last.hwm_mb, 1)
            watcher.poll()
            if proc.poll() is not None:
                raise RuntimeError(f"goavail exited during the window: {watcher.errors[:5]}")
            elapsed = last.at - first.at
            result.duration_s = round(elapsed, 2)
            result.goavail_cpu_per_round = round((last.cpu - first.cpu) / elapsed, 4)
            if last.cpu > first.cpu:
                result.goavail_user_share = round(
                    (last.user - first.user) / (last.cpu - first.cpu), 2
                )
            result.goavail_rss_mb = round(last.rss_mb, 1)
            result.rss_max_in_window_mb = round(max(rss_max, last.rss_mb), 1)
            result.goavail_peak_rss_mb = round(last.hwm_mb, 1)
            result.false_downs = watcher.downs - downs_before
            if watcher.down_targets:
                result.notes.append(f"down targets (first 20): {watcher.down_targets}")
            if watcher.errors:
                result.notes.append(f"errors in the log (first 3): {watcher.errors[:3]}")
            diff = counts_after - counts_before
            by_kind: collections.Counter[str] = collections.Counter()
            for (method, route), c in diff.items():
                by_kind[_kind(method, route)] += c
            result.api_requests_in_window = dict(sorted(by_kind.items()))
            if passes_before is not None and passes_after is not None:
                result.resyncs_in_window = passes_after - passes_before
                if result.resyncs_in_window > 0:
                    result.api_calls_per_resync = round(
                        sum(by_kind.values()) / result.resyncs_in_window, 1
                    )
            result.pages = [
                {
                    "path": t.path,
                    "gets": t.count,
                    "errors": t.errors,
                    "bytes": t.bytes,
                    "p50_ms": t.p50_ms,
                    "max_ms": t.max_ms,
                    "ms": t.ms,
                }
                for t in pages.values()
            ]
        finally:
            stop(proc)
        if not args.no_fping:
            fping_args = argparse.Namespace(**{**vars(args), "duration": args.fping_duration})
            measure_fping(result, workdir, targets, fping_args)
    if result.goavail_cpu_per_round is not None and result.fping_cpu_per_round:
        result.ratio = round(result.goavail_cpu_per_round / result.fping_cpu_per_round, 2)
    return result


def _fmt(value: object, spec: str = "") -> str:
    return "n/a" if value is None else format(value, spec)


def table(results: Sequence[CfResult]) -> str:
    """The results as a Markdown table."""
    head = (
        "| targets | names | goavail CPU s/round | fping CPU s/round | ratio | RSS MB "
        "(max in window, peak) | false downs | resyncs | API calls/resync "
        "| `/` p50 / max ms | `/api/status` p50 / max ms | CPU s/round with pages "
        "| RSS MB after pages (peak) |\n"
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |"
    )
    rows = []
    for r in results:
        page = {p["path"]: p for p in r.pages}

        def ms(path: str, page: dict[str, dict[str, Any]] = page) -> str:
            p = page.get(path)
            if p is None:
                return "n/a"
            return f"{_fmt(p['p50_ms'], '.0f')} / {_fmt(p['max_ms'], '.0f')}"

        rows.append(
            f"| {r.targets:,} | {r.names:,} | {_fmt(r.goavail_cpu_per_round, '.4f')} "
            f"| {_fmt(r.fping_cpu_per_round, '.4f')} | {_fmt(r.ratio, '.2f')} "
            f"| {_fmt(r.goavail_rss_mb, '.1f')} ({_fmt(r.rss_max_in_window_mb, '.1f')}, "
            f"{_fmt(r.goavail_peak_rss_mb, '.1f')}) | {_fmt(r.false_downs)} "
            f"| {_fmt(r.resyncs_in_window, '.0f')} | {_fmt(r.api_calls_per_resync)} "
            f"| {ms('/')} | {ms('/api/status')} | {_fmt(r.page_window_cpu_per_round, '.4f')} "
            f"| {_fmt(r.rss_after_pages_mb, '.1f')} ({_fmt(r.peak_rss_after_pages_mb, '.1f')}) |"
        )
    return "\n".join([head, *rows])


def slope_kb(results: Sequence[CfResult]) -> float | None:
    """KB of RSS per extra target between the two largest sizes (last samples). Pure."""
    measured = sorted((r for r in results if r.goavail_rss_mb is not None), key=lambda r: r.targets)
    if len(measured) < 2:
        return None
    a, b = measured[-2], measured[-1]
    assert a.goavail_rss_mb is not None
    assert b.goavail_rss_mb is not None
    return round((b.goavail_rss_mb - a.goavail_rss_mb) * 1024 / (b.targets - a.targets), 3)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.cfpath", description=__doc__.split("\n")[0])
    p.add_argument("--targets", default="10000,50000", help="comma-separated sizes")
    p.add_argument("--duration", type=float, default=130.0, help="measured window, s (>= 120)")
    p.add_argument("--resync", default="20s", help='goavail resync_interval ("20s")')
    p.add_argument("--page-every", type=float, default=10.0, help="s between page GETs")
    p.add_argument("--page-duration", type=float, default=60.0, help="page window, s")
    p.add_argument("--fping-duration", type=float, default=60.0, help="fping's window, s")
    p.add_argument("--warmup", type=float, default=30.0, help="warm-up limit, s (+ N/2000)")
    p.add_argument("--settle", type=float, default=3.0, help="pause before a window, s")
    p.add_argument("--no-fping", action="store_true", help="measure goavail only")
    p.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        help="after the window, sample goavail 20 s with py-spy and write a summary here",
    )
    p.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    args = p.parse_args(list(argv))
    args.interval = 1.0
    args.timeout = "500ms"
    args.sizes = [int(s.replace("_", "")) for s in str(args.targets).split(",") if s.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: re-exec in a private namespace, run every size, print and save."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    ensure_private_netns(argv, module="bench.cfpath")
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    info = machine()
    print(f"bench: {info['nproc']} CPUs, load {info['loadavg_at_start']}", flush=True)
    results: list[CfResult] = []
    for n in args.sizes:
        print(f"bench: Cloudflare path, {n:,} targets ...", flush=True)
        r = measure(n, args)
        results.append(r)
        print(table([r]).splitlines()[-1], flush=True)
        print(f"  API requests in the window: {r.api_requests_in_window}", flush=True)
        for note in r.notes + ([r.fping_note] if r.fping_note else []):
            print(f"  note: {note}", flush=True)
    info["loadavg_at_end"] = os.getloadavg()
    slope = slope_kb(results)
    print()
    print(table(results))
    print(f"RSS per extra target: {_fmt(slope)} KB; load at end {info['loadavg_at_end']}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "command": " ".join(["python -m bench.cfpath", *argv]),
            "machine": info,
            "goals": GOALS,
            "results": [asdict(r) for r in results],
            "rss_kb_per_extra_target": slope,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"bench: wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
