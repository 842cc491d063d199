"""Scale benchmark: the real ``goavail monitor`` against fping on N loopback targets.

Usage (root; the harness re-executes itself in a private network namespace)::

    .venv/bin/python -m bench.run --targets 1000,10000 --duration 60 \\
        --json bench/results/latest.json

For each size N the harness

1. generates N loopback targets 127.x.y.z (not 127.0.0.0/24, no .0/.255 host bytes),
2. writes a zone file that already holds ``www A`` for every target and a goavail
   config (zonefile provider, ``interval = 1``, ``timeout = "500ms"``,
   ``failure_threshold = 3``) and starts ``python -m goavail monitor --dry-run``,
3. waits until goavail has logged ``unknown -> up`` for every target (warm-up),
4. measures goavail over ``--duration`` seconds: CPU seconds (utime + stime from
   ``/proc/PID/stat``) per round, peak and current RSS, and every ``-> down``
   transition it logs (there is no outage, so each one is a false down),
5. stops goavail, then runs ``fping -l -p 1000 -t 500 -q -f TARGETS`` on the same
   targets for the same window and measures its CPU per round the same way.

goavail and fping run one after the other, not side by side: every raw ICMP socket
receives a copy of every echo reply in the namespace, so running them together
would double each one's receive work (and their CPU would compete on 2 cores).

The zone already holds every record, so in steady state (all targets up) the
reconciler has nothing to change: the measured CPU is the probe engine, the
scheduler and the health bookkeeping, plus one resync of the zone file per
``resync_interval`` (60 s), as in production. ``--dry-run`` guarantees the zone
file is never rewritten even if a false down happens.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

from goavail.proc import die_with_parent

REPO: Final = Path(__file__).resolve().parents[1]
_ENV_FLAG: Final = "GOAVAIL_BENCH_PRIVATE_NETNS"
_CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
FPING_SEQ_LIMIT: Final = 65535
"""fping's sequence map: at most this many probes of all hosts can be tracked."""

_TRANSITION: Final = re.compile(r"target (\S+) (\w+) -> (\w+) after")


# -- the private network namespace ----------------------------------------------------------


def ensure_private_netns(argv: Sequence[str], module: str = "bench.run") -> None:
    """Re-execute ``python -m module argv`` under ``unshare -n`` unless already inside;
    check the namespace.

    Inside, ``lo`` is brought up and the namespace must hold nothing else.

    Raises:
        SystemExit: not root, or the namespace holds other interfaces.
    """
    if os.environ.get(_ENV_FLAG) != "1":
        if os.geteuid() != 0:
            raise SystemExit("bench: needs root (raw ICMP sockets, a private network namespace)")
        os.environ[_ENV_FLAG] = "1"
        cmd = ["unshare", "--net", "--", sys.executable, "-m", module, *argv]
        os.execvp("unshare", cmd)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    links = subprocess.run(["ip", "-o", "link"], check=True, capture_output=True, text=True)
    names = [line.split(":")[1].strip() for line in links.stdout.splitlines()]
    if names != ["lo"]:
        raise SystemExit(f"bench: refusing to run, the network namespace is not private: {names}")


_die_with_parent = die_with_parent(signal.SIGKILL)
"""preexec_fn for children: SIGKILL them if the harness dies (or None without prctl)."""


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into SystemExit so that ``finally`` blocks stop every child."""
    raise SystemExit(128 + signum)


# -- targets, config, processes ----------------------------------------------------------------


def loopback_targets(n: int) -> list[str]:
    """``n`` distinct loopback addresses, skipping 127.0.0.0/24 and .0/.255 host bytes.

    Raises:
        ValueError: more addresses than 127.0.0.0/8 offers this way.
    """

    def gen() -> Iterator[str]:
        for x in range(256):
            for y in range(256):
                if x == 0 and y == 0:
                    continue
                for z in range(1, 255):
                    yield f"127.{x}.{y}.{z}"

    out: list[str] = []
    for addr in gen():
        if len(out) == n:
            return out
        out.append(addr)
    if len(out) < n:
        raise ValueError(f"at most {len(out)} loopback targets available")
    return out


def write_setup(workdir: Path, targets: Sequence[str], timeout: str) -> Path:
    """Write the zone file (every target already present) and the config; return its path."""
    zone = workdir / "bench.test.zone"
    lines = [
        "$ORIGIN bench.test.",
        "$TTL 3600",
        "@ IN SOA ns1 hostmaster 2024010100 3600 600 604800 300",
        "  IN NS ns1",
        "ns1 IN A 127.0.0.1",
    ]
    lines += [f"www 60 IN A {t}" for t in targets]
    zone.write_text("\n".join(lines) + "\n", encoding="ascii")
    addrs = ",\n".join(f'  "{t}"' for t in targets)
    config = workdir / "goavail.toml"
    config.write_text(
        f"""\
failure_threshold = 3
interval = 1
timeout = "{timeout}"

[Zonefile]
path = "{zone}"
origin = "bench.test"
hostnames = ["www"]
ttl = 60
ip_addresses = [
{addrs}
]
""",
        encoding="ascii",
    )
    return config


def goavail_command(config: Path) -> list[str]:
    """``python -m goavail monitor`` on ``config`` with the zonefile provider, dry-run."""
    return [
        sys.executable,
        "-m",
        "goavail",
        "monitor",
        "--config-file",
        str(config),
        "--dns-provider",
        "zonefile",
        "--dry-run",
    ]


def start(cmd: Sequence[str], log: Path, keep_env: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Start ``cmd`` with stdout and stderr appended to ``log``; it dies with the harness.

    DNS credentials are not passed on, except the variables named in ``keep_env``.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k in keep_env or not k.startswith(("CLOUDFLARE_", "CF_API_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    with log.open("ab") as out:
        return subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
            preexec_fn=_die_with_parent,
        )


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM ``proc``, SIGKILL it after ``grace`` seconds, and reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


@dataclass
class ProcSample:
    """CPU seconds (user + system, all threads) and memory of a process at one moment."""

    at: float
    cpu: float
    user: float
    rss_mb: float
    hwm_mb: float


def sample(pid: int) -> ProcSample:
    """Read ``/proc/PID/stat`` (utime, stime) and ``/proc/PID/status`` (VmRSS, VmHWM)."""
    now = time.monotonic()
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rpartition(")")[2].split()
    user = int(fields[11]) / _CLK_TCK  # utime, stime: fields 14, 15 of proc(5)
    cpu = user + int(fields[12]) / _CLK_TCK
    mem: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                mem[key] = int(value.split()[0]) / 1024
    return ProcSample(now, cpu, user, mem.get("VmRSS", 0.0), mem.get("VmHWM", 0.0))


_FIRST_VERDICTS: Final = re.compile(
    r"first verdicts on \d+ more targets: ([^;(]*(?:\([^)]*\)[^;(]*)*)"
)
_COUNT: Final = re.compile(r"(\d+) (up|down)\b")


class LogWatcher:
    """Counts goavail's state transitions by reading its log file incrementally (the
    summaries of first verdicts included: see goavail/firstlines.py)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._rest = b""
        self.up_from_unknown = 0
        self.downs = 0
        self.down_targets: list[str] = []
        self.errors: list[str] = []

    def poll(self) -> None:
        """Read what was appended since the last call and update the counters."""
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        data = self._rest + data
        lines = data.split(b"\n")
        self._rest = lines.pop()
        for raw in lines:
            if b"first verdicts on " in raw:
                # goavail logs at most 10 first verdicts a second one by one, and sums up
                # the others (goavail/firstlines.py): "... N more targets: U up, D down (..."
                summary = _FIRST_VERDICTS.search(raw.decode(errors="replace"))
                if summary is not None:
                    counts = dict((state, int(n)) for n, state in _COUNT.findall(summary.group(1)))
                    self.up_from_unknown += counts.get("up", 0)
                    self.downs += counts.get("down", 0)
                continue
            if b" -> " not in raw:
                if b"Traceback" in raw or b"ERROR" in raw:
                    self.errors.append(raw.decode(errors="replace"))
                continue
            m = _TRANSITION.search(raw.decode(errors="replace"))
            if m is None:
                continue
            old, new = m.group(2), m.group(3)
            if new == "down":
                self.downs += 1
                if len(self.down_targets) < 20:
                    self.down_targets.append(m.group(1))
            elif new == "up" and old == "unknown":
                self.up_from_unknown += 1


# -- one size --------------------------------------------------------------------------------


@dataclass
class SizeResult:
    """The figures of one benchmark size (one row of the table)."""

    targets: int
    duration_s: float = 0.0
    warmup_s: float | None = None
    all_up: bool = False
    up_after_warmup: int = 0
    goavail_cpu_per_round: float | None = None
    goavail_user_share: float | None = None
    goavail_rss_mb: float | None = None
    goavail_peak_rss_mb: float | None = None
    false_downs: int | None = None
    false_downs_in_warmup: int | None = None
    fping_cpu_per_round: float | None = None
    fping_user_share: float | None = None
    fping_note: str | None = None
    ratio: float | None = None
    notes: list[str] = field(default_factory=list)


def measure_goavail(
    result: SizeResult, workdir: Path, targets: Sequence[str], args: argparse.Namespace
) -> None:
    """Start goavail on ``targets``, warm up, measure one window, stop it."""
    n = len(targets)
    config = write_setup(workdir, targets, args.timeout)
    log = workdir / "goavail.log"
    watcher = LogWatcher(log)
    log.touch()
    started = time.monotonic()
    proc = start(goavail_command(config), log)
    try:
        warmup_limit = args.warmup + n / 2000
        while watcher.up_from_unknown < n and time.monotonic() - started < warmup_limit:
            if proc.poll() is not None:
                watcher.poll()
                raise RuntimeError(f"goavail exited with {proc.returncode}: {watcher.errors[:5]}")
            time.sleep(0.2)
            watcher.poll()
        result.warmup_s = round(time.monotonic() - started, 1)
        result.all_up = watcher.up_from_unknown >= n
        result.up_after_warmup = watcher.up_from_unknown
        if not result.all_up:
            result.notes.append(f"warm-up: only {watcher.up_from_unknown}/{n} targets came up")
        time.sleep(args.settle)  # let start-up garbage and the first reconcile pass settle
        watcher.poll()
        result.false_downs_in_warmup = watcher.downs
        downs_before = watcher.downs
        first = sample(proc.pid)
        time.sleep(args.duration)
        last = sample(proc.pid)
        watcher.poll()
        if proc.poll() is not None:
            raise RuntimeError(f"goavail exited during the window: {watcher.errors[:5]}")
        elapsed = last.at - first.at
        result.duration_s = round(elapsed, 2)
        rounds = elapsed / args.interval
        result.goavail_cpu_per_round = round((last.cpu - first.cpu) / rounds, 4)
        if last.cpu > first.cpu:
            result.goavail_user_share = round((last.user - first.user) / (last.cpu - first.cpu), 2)
        result.goavail_rss_mb = round(last.rss_mb, 1)
        result.goavail_peak_rss_mb = round(last.hwm_mb, 1)
        result.false_downs = watcher.downs - downs_before
        if watcher.down_targets:
            result.notes.append(f"down targets (first 20): {watcher.down_targets}")
        if args.profile_dir is not None:
            profile(proc.pid, n, args)
    finally:
        stop(proc)


def fping_lifetime(n: int, interval: float) -> float:
    """Seconds one ``fping -l`` process survives on ``n`` targets.

    fping 5.1 keeps 65,535 sequence numbers and will not reuse one for 10 s
    (``SEQMAP_TIMEOUT``); once it has sent 65,535 probes within 10 s it exits with
    "not enough sequence numbers available". With ``n`` probes per ``interval``, the
    first round sent at once at start-up, that is after ``(65535 / n - 1) * interval``
    seconds (10,000 targets: 5.5 s).
    """
    return (FPING_SEQ_LIMIT / n - 1) * interval


def profile(pid: int, n: int, args: argparse.Namespace) -> None:
    """Sample goavail with py-spy for 20 s (after the window): collapsed stacks + summary.

    Writes ``goavail-N.folded`` (flame-graph input) and ``goavail-N.txt`` (functions
    by share of samples, self and total) to ``args.profile_dir``.
    """
    out_dir: Path = args.profile_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    folded = out_dir / f"goavail-{n}.folded"
    py_spy = Path(sys.executable).with_name("py-spy")
    subprocess.run(
        [str(py_spy), "record", "--pid", str(pid), "--duration", "20", "--rate", "200",
         "--nonblocking", "--format", "raw", "--output", str(folded)],
        check=True, capture_output=True,
    )  # fmt: skip
    self_count: dict[str, int] = {}
    total_count: dict[str, int] = {}
    samples = 0
    for line in folded.read_text(encoding="utf-8").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        leaf = re.sub(r"\s*\(.*?:\d+\)$", "", frames[-1])
        self_count[leaf] = self_count.get(leaf, 0) + count
        for frame in {re.sub(r"\s*\(.*?:\d+\)$", "", f) for f in frames}:
            total_count[frame] = total_count.get(frame, 0) + count
    lines = [f"py-spy, {n:,} targets, 20 s at 200 Hz, {samples} samples", "", "self %  function"]
    lines += [
        f"{100 * c / samples:6.1f}  {name}"
        for name, c in sorted(self_count.items(), key=lambda kv: -kv[1])[:25]
    ]
    lines += ["", "total %  function"]
    lines += [
        f"{100 * c / samples:7.1f}  {name}"
        for name, c in sorted(total_count.items(), key=lambda kv: -kv[1])[:40]
    ]
    (out_dir / f"goavail-{n}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def measure_fping(
    result: SizeResult, workdir: Path, targets: Sequence[str], args: argparse.Namespace
) -> None:
    """Run fping in loop mode on ``targets`` and measure its CPU per round.

    When one fping process cannot live through the window (see :func:`fping_lifetime`),
    fping is restarted in segments: each segment skips the first round and a
    safety margin, and the CPU and time of the segments' measured parts are summed.
    """
    n = len(targets)
    period_ms = int(args.interval * 1000)
    timeout_ms = int(_seconds(args.timeout) * 1000)
    # one start-up round, then measure, and stop 0.5 s before fping would exit
    usable = fping_lifetime(n, args.interval) - args.interval - 0.5
    if usable < 2.0:
        result.fping_note = (
            f"n/a: one fping process lives {fping_lifetime(n, args.interval):.1f} s on "
            f"{n:,} targets (its sequence map: 65,535 probes per 10 s)"
        )
        return
    segment = min(args.duration, usable)
    target_file = workdir / "fping-targets.txt"
    target_file.write_text("\n".join(targets) + "\n", encoding="ascii")
    log = workdir / "fping.log"
    # -Q: quiet (plain -q still prints every reply in loop mode in fping 5.1);
    # -i 0: no minimum gap between packets (root only; the default 10 ms caps fping at
    # 100 probes per second).
    cmd = [
        "fping", "-l", "-Q", "86400", "-p", str(period_ms), "-t", str(timeout_ms),
        "-i", "0", "-f", str(target_file),
    ]  # fmt: skip
    cpu = 0.0
    user = 0.0
    measured = 0.0
    segments = 0
    while measured < args.duration - 0.01:
        proc = start(cmd, log)
        try:
            time.sleep(min(args.settle, args.interval + 0.2))
            if proc.poll() is not None:
                result.fping_note = f"n/a: fping exited: {log.read_text(errors='replace')[-300:]}"
                return
            first = sample(proc.pid)
            time.sleep(min(segment, args.duration - measured))
            last = sample(proc.pid)
            if proc.poll() is not None:
                result.fping_note = f"n/a: fping exited: {log.read_text(errors='replace')[-300:]}"
                return
        finally:
            stop(proc)
        cpu += last.cpu - first.cpu
        user += last.user - first.user
        measured += last.at - first.at
        segments += 1
    result.fping_cpu_per_round = round(cpu / (measured / args.interval), 4)
    if cpu > 0:
        result.fping_user_share = round(user / cpu, 2)
    if segments > 1:
        result.notes.append(
            f"fping: {segments} segments of {segment:.1f} s (one process lives "
            f"{fping_lifetime(n, args.interval):.1f} s at this size)"
        )


def _seconds(text: str) -> float:
    """``"500ms"`` / ``"1s"`` / ``"2"`` -> seconds."""
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    return float(text.removesuffix("s"))


def run_size(n: int, args: argparse.Namespace) -> SizeResult:
    """Measure goavail, then fping, on ``n`` targets."""
    result = SizeResult(targets=n)
    targets = loopback_targets(n)
    with tempfile.TemporaryDirectory(prefix=f"goavail-bench-{n}-") as tmp:
        workdir = Path(tmp)
        measure_goavail(result, workdir, targets, args)
        if not args.no_fping:
            measure_fping(result, workdir, targets, args)
    if result.goavail_cpu_per_round is not None and result.fping_cpu_per_round:
        result.ratio = round(result.goavail_cpu_per_round / result.fping_cpu_per_round, 2)
    return result


# -- output ----------------------------------------------------------------------------------


def _fmt(value: object, spec: str = "") -> str:
    if value is None:
        return "n/a"
    return format(value, spec)


def _not_up(r: SizeResult) -> str:
    """Marks a row whose warm-up ended with targets still unknown (an overloaded agent)."""
    if r.all_up:
        return ""
    return f" (only {r.up_after_warmup:,}/{r.targets:,} up after warm-up)"


def table(results: Sequence[SizeResult]) -> str:
    """The results as a Markdown table."""
    head = (
        "| targets | goavail CPU s/round | fping CPU s/round | ratio | RSS MB (peak) "
        "| false downs |\n| ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    rows = [
        f"| {r.targets:,} | {_fmt(r.goavail_cpu_per_round, '.4f')} "
        f"| {_fmt(r.fping_cpu_per_round, '.4f')} | {_fmt(r.ratio, '.2f')} "
        f"| {_fmt(r.goavail_rss_mb, '.1f')} ({_fmt(r.goavail_peak_rss_mb, '.1f')}) "
        f"| {_fmt(r.false_downs)}{_not_up(r)} |"
        for r in results
    ]
    return "\n".join([head, *rows])


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "fping": subprocess.run(
            ["fping", "-v"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "loadavg_at_start": os.getloadavg(),
    }


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument(
        "--targets",
        default="1000,10000,50000",
        help="comma-separated sizes (default 1000,10000,50000)",
    )
    p.add_argument("--duration", type=float, default=60.0, help="measured window, seconds")
    p.add_argument("--timeout", default="500ms", help='goavail timeout and fping -t ("500ms")')
    p.add_argument("--warmup", type=float, default=30.0, help="warm-up limit, s (+ N/2000)")
    p.add_argument("--settle", type=float, default=3.0, help="pause before a window, seconds")
    p.add_argument("--no-fping", action="store_true", help="measure goavail only")
    p.add_argument(
        "--latency-trials",
        type=int,
        default=0,
        help="also measure single-node failover latency over this many outages (>= 20)",
    )
    p.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        help="after each goavail window, sample it 20 s with py-spy and write a summary here",
    )
    p.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    args = p.parse_args(list(argv))
    args.interval = 1.0
    args.timeout_s = _seconds(args.timeout)
    args.sizes = [int(s.replace("_", "")) for s in str(args.targets).split(",") if s.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: re-exec in a private namespace, run every size, print and save."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    ensure_private_netns(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    info = machine()
    print(f"bench: {info['nproc']} CPUs, {info['cpu_model']}, Linux {info['kernel']}", flush=True)
    results: list[SizeResult] = []
    for n in args.sizes:
        if n <= 0:
            continue
        print(f"bench: {n:,} targets ...", flush=True)
        r = run_size(n, args)
        results.append(r)
        print(table([r]).splitlines()[-1], flush=True)
        for note in r.notes + ([r.fping_note] if r.fping_note else []):
            print(f"  note: {note}", flush=True)
    print()
    print(table(results))
    latency: dict[str, Any] | None = None
    if args.latency_trials > 0:
        from bench.latency import run_latency  # imports the test stand-in (aiohttp)

        print(f"\nbench: failover latency, {args.latency_trials} trials ...", flush=True)
        latency = run_latency(args)
        print(
            f"failover latency (threshold {latency['failure_threshold']}, interval 1 s, "
            f"timeout {args.timeout}): p50 {latency['p50_s']:.3f} s, "
            f"p99 {latency['p99_s']:.3f} s, bound {latency['bound_s']:.3f} s"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "command": " ".join(["python -m bench.run", *argv]),
            "machine": info,
            "settings": {
                "interval_s": args.interval,
                "timeout": args.timeout,
                "failure_threshold": 3,
                "duration_s": args.duration,
            },
            "results": [asdict(r) for r in results],
            "latency": latency,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"\nbench: wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
